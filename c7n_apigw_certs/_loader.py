"""The lazy hook that makes an installed plugin known to stock ``custodian`` and ``c7n-org``.

c7n no longer loads plugins through entry points (cloud-custodian issue #6443;
docs/aws-behaviour.md, fact 17), so ``c7n_apigw_certs.pth`` in site-packages runs ``install()``
at interpreter start. ``install()`` only puts a finder on ``sys.meta_path``: nothing is imported
until the process imports ``c7n.resources.aws``; right after that module executes, the plugin
registers itself (``c7n_apigw_certs.initialize``). The pattern is setuptools'
``distutils-precedence.pth``; it works whatever the multiprocessing start method (fork, spawn,
forkserver: fact 18), because every new interpreter reads the .pth file, and a forked one
inherits the finished registration.

Standard library only, and nothing heavy: it runs at the start of every Python process.
"""
import sys

TRIGGER = "c7n.resources.aws"


class _AfterExec:
    """Wraps the real loader of TRIGGER: executes the module, then activates the plugin."""

    def __init__(self, loader):
        self.loader = loader

    def __getattr__(self, name):  # get_source, is_package...: tracebacks still show source
        return getattr(self.loader, name)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        from c7n_apigw_certs import initialize
        initialize()


class _Finder:
    """Finds nothing itself: it asks the other finders for TRIGGER's spec and wraps its loader,
    then steps out of ``sys.meta_path``; one import is all it watches."""

    def find_spec(self, name, path=None, target=None):
        if name != TRIGGER:
            return None
        uninstall()
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find else None
            if spec is not None and spec.loader is not None:
                spec.loader = _AfterExec(spec.loader)
                return spec
        return None


_FINDER = _Finder()


def install():
    """Called by the .pth line. If c7n is already imported, activate now."""
    if TRIGGER in sys.modules:
        from c7n_apigw_certs import initialize
        initialize()
    elif _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def uninstall():
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
