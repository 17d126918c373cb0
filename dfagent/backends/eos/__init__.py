"""backends/eos"""
