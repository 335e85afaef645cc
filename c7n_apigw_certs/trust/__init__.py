"""Trust: where the certificates backends must trust are written, and how backends read them.

- ``publish.py``: trust destinations (``ssm``, ``s3``, ``elb-trust-store``) and which
  certificates each bundle must hold (pure); ``bundles.py``: PEM bundles as text (pure, stdlib).
- ``stores.py``: the stores (SSM parameters, S3 objects, Elastic Load Balancing trust stores):
  read, merge, size and quota checks, conditional write, read back.
- ``trust_sync.py``: ``c7n-apigw-certs trust-sync``, run on a backend host (nginx, Envoy, Node):
  its trust file kept in step with a bundle, atomically, the old file kept on any failure.

May import: the package's core modules (``iam``, ``handler``), ``audit`` and this folder
(tests/test_layout.py holds it).
"""
