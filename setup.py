"""c7n-apigw-certs: audit and rotate API Gateway client certificates with Cloud Custodian."""
import os

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

PTH = "c7n_apigw_certs.pth"


class BuildWithLoader(build_py):
    """Lay the one-line .pth hook at the root of the wheel, so that ``pip install .`` puts it in
    site-packages and every Python process (``custodian``, each ``c7n-org`` worker) loads the
    plugin lazily (docs/aws-behaviour.md, facts 17-18). ``pip install -e .`` does not carry it."""

    def run(self):
        super().run()
        self.copy_file(PTH, os.path.join(self.build_lib, PTH), preserve_mode=0)


here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "README.md"), encoding="utf-8") as fh:
    long_description = fh.read()

setup(
    name="c7n-apigw-certs",
    version="0.1.0",
    description="Cloud Custodian plugin: API Gateway client certificates that never expire in "
                "production (audit and staged rotation)",
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["c7n_apigw_certs", "c7n_apigw_certs.*"]),
    # The c7n-mailer template(s): `c7n-apigw-certs mailer-templates` prints their folder.
    package_data={"c7n_apigw_certs": ["signals/mailer/*.j2"]},
    cmdclass={"build_py": BuildWithLoader},
    install_requires=[
        "c7n>=0.9.53",
        "boto3",
        "jsonschema",
        "pyyaml",
        # No cryptography: the filters read PEMs with the standard library (pem.py), because
        # c7n's Lambda archive cannot carry it (docs/aws-behaviour.md, fact 34).
    ],
    extras_require={
        # The sandbox patches moto's API Gateway internals: pinned to the minor it was built on.
        # Services beyond API Gateway: stores (ssm, s3), templates (cloudformation), signals
        # (cloudwatch, events, sqs), Lambda modes and AWS Config (lambda, iam, logs, config),
        # ACM certificates on stages and their private CAs (acm, acmpca).
        # Not moto's extras "server", "cloudformation" or "awslambda": beyond flask they add
        # cfn-lint (with sympy and networkx: a third of a fresh install's time), docker and the
        # Step Functions parser, which moto imports only to lint a template (ValidateTemplate),
        # run a function in a container (Invoke) or run a state machine; the sandbox does none.
        # What moto's server and its CloudFormation stacks do import is listed instead.
        "sandbox": ["moto[apigateway,apigatewayv2,acm,acmpca,ssm,s3,sts,cloudwatch,config,"
                    "events,sqs,iam,logs]>=5.2.5,<5.3",
                    "flask!=2.2.0,!=2.2.1", "flask-cors",  # moto's server ("server" extra)
                    "cryptography>=43",
                    # The demo's simulated days (sandbox/timeshift.py).
                    "freezegun"],
        # c7n-mailer: the shipped mail template is rendered by its own renderer in the tests.
        # pytest-xdist: `make test` runs the suite on every core (`pytest -n`).
        "test": ["pytest", "pytest-xdist", "c7n-org", "c7n-mailer", "ruff", "freezegun"],
    },
    entry_points={
        "console_scripts": ["c7n-apigw-certs = c7n_apigw_certs.cli:main"],
    },
)
