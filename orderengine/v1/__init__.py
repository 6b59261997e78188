"""Generated from protos/orderengine/v1 by scripts/gen_protos.sh. Do not edit."""
