"""The sandbox: the whole of soong on one machine, with no account and no network.

It runs the Lambda emulator, and for every active sandbox instance a real status
daemon and a stand-in for the model server, all on loopback.
"""
