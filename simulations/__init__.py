"""Simulations of many virtual clients on one machine (installed as ``fedseed.simulations``)."""
