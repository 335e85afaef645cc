"""The audit: what exists, what uses what, and what is about to break.

- ``resource.py``: the resource ``aws.apigw-client-certificate``, each certificate with the stages
  that present it; ``usage.py`` (API Gateway's listings) and ``config_source.py`` (AWS Config,
  ``source: config``) say which stages use which certificate.
- ``acm.py`` reads the ACM certificates stages present (and their Private CAs); ``kinds.py`` has
  one adapter per kind of certificate (generated, acm-imported, acm-private, ...).
- ``filters.py``: ``expiring``, ``in-use``, ``template-owned``, ``kind``; ``owners.py``: who owns a
  certificate or a stage (templates); ``pem.py``: a PEM certificate's validity (stdlib only);
  ``report.py``: the columns of ``custodian report``.

Enumeration and decisions only: nothing here changes an account.

May import: the package's core modules (``iam``, ``handler``) and this folder. Nothing else of
the package (tests/test_layout.py holds it).
"""
