"""The signals: where what the audit and the rotation found reaches people and pipelines.

- ``metrics.py``: ``put-expiry-metric`` (CloudWatch); ``events.py``: ``post-expiry-event``
  (EventBridge); ``findings.py``: ``post-finding`` (Security Hub, archived once resolved).
- ``config_modes.py``: c7n's ``config-poll-rule`` and ``config-rule`` modes under their own
  names, with AWS Config evaluations whose annotation names the certificate.
- ``tags.py``: c7n's ``tag``, ``remove-tag``, ``mark-for-op`` and ``marked-for-op`` on certificates.
- ``mailer/``: the c7n-mailer template for c7n's ``notify``.

May import: the package's core modules (``iam``, ``handler``), ``audit``, ``trust``,
``rotation``, ``migration`` and this folder (tests/test_layout.py holds it).
"""
