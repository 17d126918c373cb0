"""backends/linux"""
