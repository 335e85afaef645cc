"""The package's folders show its design, and its imports point one way.

Each folder of ``c7n_apigw_certs`` holds one concern; a folder may import the package's core
modules and the folders before it in LAYERS, never one after it, so the audit never depends on
the rotation, the rotation never on the signals, and nothing but the command line and the
sandbox reaches into the sandbox. Every import counts, the ones inside functions too.
"""
import ast
import os
import re

import pytest

PKG = "c7n_apigw_certs"
# The sources, not the installed copy: a change is held to the rule before `make install`.
ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), PKG)
# Core: modules every folder may import; they import nothing of the package themselves.
CORE = ("iam", "handler", "clients")
# Each folder may import the core, itself and the folders before it.
LAYERS = ("audit", "trust", "rotation", "migration", "signals")
# What wires the folders together (initialize(), the .pth hook, c7n's resource map entry, the
# command line) and
# the sandbox (dev tooling that drives everything) may import anything.
TOP = ("__init__", "_loader", "entry", "cli", "sandbox")


def modules():
    found = []
    for dirpath, _, files in os.walk(ROOT):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, ROOT)[:-3].split(os.sep)
                found.append((path, rel))
    return sorted(found)


def imports(path, rel):
    """The package's modules and folders that ``path`` imports, as parts below the package."""
    package = [PKG] + rel[:-1]  # a module's package; an __init__'s is its own folder
    tree = ast.parse(open(path).read())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                mod = base + (node.module.split(".") if node.module else [])
            else:
                mod = (node.module or "").split(".")
            if mod[0] != PKG:
                continue
            if len(mod) == 1 or node.module is None:  # from . import x: x may be a module
                names.extend(mod[1:] + [alias.name] for alias in node.names)
            else:
                names.append(mod[1:])
        elif isinstance(node, ast.Import):
            names.extend(alias.name.split(".")[1:] for alias in node.names
                         if alias.name.split(".")[0] == PKG)
    return [n for n in names if n]


def owner(parts):
    """The unit a module belongs to: its folder, or its own name at the top (a name defined
    in the package's ``__init__``, such as ``initialize``, belongs to ``__init__``)."""
    if len(parts) == 1 and not os.path.exists(os.path.join(ROOT, parts[0])) and \
            not os.path.exists(os.path.join(ROOT, parts[0] + ".py")):
        return "__init__"
    return parts[0]


def allowed(importer, imported):
    if importer in TOP:
        return True
    if imported == "__init__":  # the package's names (RESOURCE_TYPE, initialize): cheap
        return True
    if imported in CORE:
        return importer not in CORE
    if importer in CORE:
        return False
    if importer in LAYERS and imported in LAYERS:
        return LAYERS.index(imported) <= LAYERS.index(importer)
    return False


@pytest.mark.parametrize("path,rel", modules(), ids=lambda v: "/".join(v) if
                         isinstance(v, list) else "")
def test_imports_point_one_way(path, rel):
    importer = owner(rel)
    wrong = sorted({"/".join(parts) for parts in imports(path, rel)
                    if owner(parts) != importer and not allowed(importer, owner(parts))})
    assert not wrong, "%s (%s) may not import %s" % ("/".join(rel), importer, wrong)


def test_every_module_lives_in_a_folder_or_is_named_top_or_core():
    loose = sorted("/".join(rel) for _, rel in modules()
                   if len(rel) == 1 and rel[0] not in CORE + TOP)
    assert not loose, "modules outside the folders: %s" % loose


@pytest.mark.parametrize("folder", LAYERS + ("sandbox",))
def test_each_folder_says_what_lives_there_and_what_it_may_import(folder):
    doc = ast.get_docstring(ast.parse(open(os.path.join(ROOT, folder, "__init__.py")).read()))
    assert doc, "%s/__init__.py has no docstring" % folder
    listed = {f[:-3] for f in os.listdir(os.path.join(ROOT, folder))
              if f.endswith(".py") and f != "__init__.py"}
    missing = sorted(m for m in listed if m + ".py" not in doc and folder != "sandbox")
    assert not missing, "%s/__init__.py does not say what %s do" % (folder, missing)
    if folder in LAYERS:
        may = re.search(r"May import:(.*)", doc, re.S).group(1)
        earlier = set(LAYERS[:LAYERS.index(folder)])
        named = {name for name in LAYERS if "``%s``" % name in may}
        assert named == earlier, "%s's docstring names %s, the rule says %s" % (
            folder, sorted(named), sorted(earlier))


def test_the_rule_can_fail():
    """Negative control: the check refuses an audit module that imports the rotation, and a
    core module that imports a folder."""
    assert not allowed("audit", "rotation")
    assert not allowed("trust", "signals")
    assert not allowed("iam", "audit")
    assert not allowed("rotation", "sandbox")
    assert allowed("signals", "audit") and allowed("rotation", "iam")
