"""FRR: drive a running FRR through vtysh (drain, undrain)."""
