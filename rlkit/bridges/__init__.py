"""Environments that live outside JAX (a Unity player, gymnasium) entering the environment
contract through host callbacks. Imports `rlkit.ops` and `rlkit.core`."""
