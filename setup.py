from setuptools import find_packages, setup

setup(
    name="websockify",
    version="1.0.0.dev0",
    description="WebSocket-to-TCP bridge and program-wrapping launcher",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["websockify", "websockify.*"]),
    install_requires=[
        "websockets>=13",
        "click>=8.1",
        "psutil>=5.9",
        # A faster event loop; optional at run time (the stdlib loop is the fallback).
        "uvloop>=0.19; sys_platform != 'win32' and platform_python_implementation == 'CPython'",
    ],
    extras_require={
        "test": ["pytest>=7", "pytest-timeout"],
        "redis": ["redis"],
        "jwt": ["jwcrypto"],
    },
    entry_points={"console_scripts": ["websockify = websockify.cli:main"]},
)
