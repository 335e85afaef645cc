"""The rotation: a new certificate, trust published, stages switched, the old one retired,
staged across runs.

- ``plan.py``: the state machine, a certificate's next step from its tags and the listings (pure).
- ``rotate.py``: the ``rotate`` action, the executors of each step; ``stages.py``: one adapter
  per stage protocol (REST, WebSocket): current, switch, deploy.
- ``retire.py``: deleting certificates only when fresh listings say nothing uses them, and the
  ``delete`` action; ``handover.py``: what a template's owner must change (pure).
- ``clock.py``: AWS's clock for the gates; ``preview.py``: ``c7n-apigw-certs plan``, the next
  run's steps, read-only.

May import: the package's core modules (``iam``, ``handler``), ``audit``, ``trust`` and this
folder (tests/test_layout.py holds it).
"""
