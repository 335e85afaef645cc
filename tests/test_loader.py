"""The installed plugin hooks into stock c7n lazily, in every kind of process."""
import json
import os
import subprocess
import sys
import sysconfig

import pytest

from conftest import run_cli


def python(code, **env):
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, **env), timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_pth_is_installed_in_site_packages():
    pth = os.path.join(sysconfig.get_paths()["purelib"], "c7n_apigw_certs.pth")
    assert os.path.exists(pth), "run the tests from a real install (make test), not -e"
    assert open(pth).read().startswith("import c7n_apigw_certs._loader")


def test_nothing_heavy_at_interpreter_start():
    loaded = json.loads(python("import sys, json; print(json.dumps(sorted(sys.modules)))"))
    assert "c7n_apigw_certs._loader" in loaded
    assert not [m for m in loaded if m == "c7n" or m.startswith(("c7n.", "boto", "crypto"))]


def test_registers_when_c7n_loads():
    out = python("from c7n.resources.resource_map import ResourceMap as M; "
                 "import c7n.resources.aws; print(M['aws.apigw-client-certificate'])")
    assert out == "c7n_apigw_certs.entry.ClientCertificate"


def test_leaves_c7n_names_alone():
    out = python("from c7n.resources import load_resources; load_resources(['aws.*']);"
                 "from c7n.provider import resources as r; rs = r('aws');"
                 "print(rs['aws.rest-client-certificate'].__module__,"
                 " rs['aws.apigw-client-certificate'].__module__)")
    assert out == "c7n.resources.apigw c7n_apigw_certs.audit.resource"


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_every_start_method(method, tmp_path):
    code = """
import multiprocessing as mp

def child():
    from c7n.resources import load_resources
    load_resources(['aws.apigw-client-certificate', 'aws.rest-stage'])
    from c7n.provider import resources
    rs = resources('aws')
    return (rs['aws.apigw-client-certificate'].__name__,
            'expiring' in rs['aws.rest-stage'].filter_registry)

if __name__ == '__main__':
    ctx = mp.get_context('%s')
    with ctx.Pool(1) as pool:
        print(pool.apply(child))
""" % method
    path = tmp_path / ("c7n_apigw_start_%s.py" % method)
    path.write_text(code)
    proc = subprocess.run([sys.executable, path], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "('ClientCertificate', True)", proc.stderr


def test_custodian_schema_prints_the_documentation():
    env = {"PATH": "/usr/bin:/bin"}
    out = run_cli("custodian", ["schema", "aws.apigw-client-certificate"], env, cold=True).stdout
    assert "stages that use them" in out and "expiring" in out and "in-use" in out
    out = run_cli("custodian", ["schema", "aws.apigw-client-certificate.filters.expiring"],
                  env, cold=True).stdout
    assert "expire within ``days`` days" in out and "minimum: 0" in out
    out = run_cli("custodian", ["schema", "aws.rest-stage.filters.expiring"], env, cold=True).stdout
    assert "REST stages whose client certificate expires" in out
