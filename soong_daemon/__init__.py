"""The soong status daemon: runs on the GPU instance and ends it when its lease,
idle timeout or hard limit says so. Installable without the CLI's dependencies."""

__version__ = "0.1.0"
