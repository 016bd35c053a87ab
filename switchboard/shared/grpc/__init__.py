"""gRPC plumbing shared by every service: server bootstrap, request pipeline, client channels."""
