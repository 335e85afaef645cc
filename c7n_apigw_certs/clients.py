"""One boto3 client per session, service and region, for the filters and actions that only call.

Making a boto3 client costs about as much CPU as a dozen API calls against a local endpoint (it
builds the service's operations and registers its event handlers); a rotation run used to make
thirteen, five of them for API Gateway in one region. A client keeps nothing between calls but
its connection pool and the handlers registered on it, and boto3's clients may be shared by
threads. c7n's ``local_session`` keeps one session per thread (renewed when its credentials
age); ``client()`` keeps each session's clients with it, so a renewed session makes new ones.

A caller that registers handlers on its client (``rotation.clock.AccountClock.watch``) or that
gives it its own botocore config makes its own with ``session.client``: a shared one would carry
those handlers and settings into every other caller's calls.
"""
import threading
import weakref

_made = weakref.WeakKeyDictionary()  # session -> {(service, region): client}
_lock = threading.Lock()


def client(session, service, region):
    """``session.client(service, region_name=region)``, made once per session."""
    with _lock:
        made = _made.setdefault(session, {})
        key = (service, region)
        if key not in made:
            made[key] = session.client(service, region_name=region)
        return made[key]
