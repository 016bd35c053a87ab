"""SQL migrations, one folder per owning service (``switchboard/migrations/<service>/NNNN_name.sql``).

Shipped as package data so that an installed ``switchboard migrate`` finds them.
"""
