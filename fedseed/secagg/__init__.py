"""Secure aggregation of a round's quantized scalars: the coordinator learns only their sum over at least
``privacy.min_clients`` clients, and nothing individual; clients learn only the aggregate (docs/privacy.md).

The protocol is Bonawitz et al.'s (CCS 2017) with SecAgg+'s sparse neighbour graph (Bell et al., CCS 2020):
per round fresh X25519 keys, pairwise masks agreed between neighbours, a self mask, both secrets Shamir-shared
among the neighbours so that the round survives clients that drop after they submitted. Masks are ChaCha20
keystreams keyed by HKDF, never a generator seeded with a few bits; shares travel AEAD-encrypted through the
coordinator. All arithmetic is exact modulo 2^32, so every party still ends bit-identical.

    field     the quantized range (clipping by construction) and modular encoding
    crypto    key agreement, key derivation, mask streams, share encryption, Shamir sharing
    graph     the public neighbour graph of a round's roster
    protocol  the client's and the coordinator's side as message-driven state machines
"""
