"""The migration: stages move from API Gateway's generated certificates to private certificates
that ACM issues from AWS Private CA and renews by itself, which ends the yearly rotation.

- ``migrate.py``: the ``migrate`` action: the rotation's executors and order, with an ACM private
  certificate as the successor and the CA chain as the trust published.

May import: the package's core modules (``iam``, ``handler``), ``audit``, ``trust``,
``rotation`` and this folder (tests/test_layout.py holds it).
"""
