"""The coordinator (installed as ``fedseed.server``); its gRPC service arrives with the federation work."""
