"""Packaging for soong. Runtime dependencies are deliberately few; see README."""

from setuptools import find_packages, setup

# Commands, by family (entry-point namespace soong.cli; underscores become spaces).
CORE_COMMANDS = [
    "plugins = soong.commands.plugins:ListPlugins",
    "secrets_set = soong.commands.secrets:SetSecret",
    "secrets_show = soong.commands.secrets:ShowSecret",
    "secrets_delete = soong.commands.secrets:DeleteSecret",
    "secrets_list = soong.commands.secrets:ListSecrets",
    "config_show = soong.commands.config:ShowConfig",
    "config_path = soong.commands.config:ConfigPath",
    "config_set = soong.commands.config:SetConfig",
    "config_unset = soong.commands.config:UnsetConfig",
    "config_migrate = soong.commands.config:MigrateConfig",
    "models_list = soong.commands.models:ListModels",
]

PROVIDER_COMMANDS = [
    "providers = soong.commands.providers:ListProviders",
    "available = soong.commands.available:ListAvailable",
]

TUNNEL_COMMANDS = [
    "tunnel_start = soong.commands.tunnel:StartTunnel",
    "tunnel_stop = soong.commands.tunnel:StopTunnel",
    "tunnel_status = soong.commands.tunnel:TunnelStatus",
    "tunnel_api-key = soong.commands.tunnel:TunnelApiKey",
    "ssh = soong.commands.ssh:Ssh",
    "ssh-config = soong.commands.ssh:SshConfig",
]

MODEL_COMMANDS = [
    "models_info = soong.commands.models:ShowModel",
    "models_add = soong.commands.models:AddModel",
    "models_remove = soong.commands.models:RemoveModel",
    "models_recommend = soong.commands.models:RecommendModel",
    "user-data = soong.commands.user_data:ShowUserData",
]

LIFECYCLE_COMMANDS = [
    "configure = soong.commands.configure:Configure",
    "start = soong.commands.start:Start",
    "status = soong.commands.status:Status",
    "extend = soong.commands.extend:Extend",
    "stop = soong.commands.stop:Stop",
]

COST_COMMANDS = [
    "history = soong.commands.history:History",
    "cost = soong.commands.cost:CostReport",
    "adopt = soong.commands.adopt:Adopt",
    "sinks_status = soong.commands.sinks:SinksStatus",
    "sinks_retry = soong.commands.sinks:SinksRetry",
    "watchdog_run = soong.commands.watchdog:WatchdogRun",
    "watchdog_install = soong.commands.watchdog:WatchdogInstall",
    "watchdog_uninstall = soong.commands.watchdog:WatchdogUninstall",
    "watchdog_status = soong.commands.watchdog:WatchdogStatus",
]

SANDBOX_COMMANDS = [
    "sandbox_up = soong.commands.sandbox:SandboxUp",
    "sandbox_down = soong.commands.sandbox:SandboxDown",
    "sandbox_status = soong.commands.sandbox:SandboxStatus",
    "demo = soong.commands.demo:Demo",
]

COMMANDS = CORE_COMMANDS + PROVIDER_COMMANDS + TUNNEL_COMMANDS + MODEL_COMMANDS + LIFECYCLE_COMMANDS + COST_COMMANDS + SANDBOX_COMMANDS

CONSOLE_SCRIPTS = [
    "soong = soong.core.app:main",
    "soong-daemon = soong_daemon.cli:main",
    "soong-lambda-emulator = soong.plugins.lambda_cloud.emulator.cli:main",
]

# Built-in plugins (entry-point group soong), registered exactly as third-party ones.
BUILTIN_PLUGINS = [
    "lambda = soong.plugins.lambda_cloud",
    "sglang = soong.plugins.sglang",
    "plumbum-ssh = soong.plugins.plumbum_ssh",
    "direct = soong.plugins.direct_tunnel",
    "ledger = soong.plugins.ledger",
    "jsonl = soong.plugins.jsonl_sink",
]

DAEMON = ["falcon>=4,<5", "gunicorn>=23", "pyyaml>=6", "requests>=2.31"]

setup(
    name="soong",
    version="0.1.0",
    description="Launch, watch and stop LLM-serving GPU instances on Lambda Cloud without paying for forgotten ones.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["soong", "soong.*", "soong_daemon", "soong_daemon.*"]),
    include_package_data=True,
    package_data={"soong.plugins.lambda_cloud.emulator": ["data/*.json"]},
    install_requires=[
        "pluggy>=1.3",
        "cliff>=4.4",
        "requests>=2.31",
        "tenacity>=8.2",
        "keyring>=24",
        "plumbum>=1.8",
        "pyyaml>=6",
    ],
    extras_require={
        "daemon": DAEMON,
        "test": DAEMON + [
            "pytest>=7",
            "hypothesis>=6.80",
            "jsonschema>=4.18",
            "ruff>=0.4",
            "mkdocs>=1.5",
        ],
    },
    entry_points={
        "console_scripts": CONSOLE_SCRIPTS,
        "soong.cli": COMMANDS,
        "soong": BUILTIN_PLUGINS,
    },
    classifiers=[
        "Environment :: Console",
        "Programming Language :: Python :: 3",
        "Topic :: System :: Distributed Computing",
    ],
)
