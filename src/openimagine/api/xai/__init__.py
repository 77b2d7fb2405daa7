"""xAI's own video API as a door: its REST routes (`routes`) and its gRPC service (`grpc`),
both over one mapping of its fields to the domain (`mapping`)."""
