"""Generated protobuf and gRPC code of the wire protocol (protos/fedseed/v1); regenerate with
scripts/gen_protos.sh, never edit by hand."""
