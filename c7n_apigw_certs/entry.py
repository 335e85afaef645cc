"""What c7n's resource map names for ``aws.apigw-client-certificate``: the resource, then every
filter and action that registers on it.

c7n imports this module (``load_resources``) only when a policy or a command needs the resource,
so nothing here runs at interpreter start. Every import points one way: the elements import the
resource, and only this module imports the elements.
"""
from .audit.resource import ClientCertificate  # noqa: F401
from .audit import filters  # noqa: F401,E402,I001
from .rotation import retire, rotate  # noqa: F401,E402,I001
from .signals import tags  # noqa: F401,E402,I001
from .signals import metrics  # noqa: F401,E402,I001
from .signals import events  # noqa: F401,E402,I001
from .signals import findings  # noqa: F401,E402,I001
from .migration import migrate  # noqa: F401,E402,I001
