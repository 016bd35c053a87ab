"""Switchboard: the command line, and the Python code generated from the contracts in protos/.

The generated modules live under ``switchboard.<context>.v1`` so that their import path is the
proto package name (``switchboard.identity.v1.identity_service_pb2``); they are checked in and
regenerated with ``switchboard codegen``.
"""
