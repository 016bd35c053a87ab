"""The secretproxy service: secrets, placeholders, provider credentials, egress policy, forwarding."""
