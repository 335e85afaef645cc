"""The README and docs/ held to what they show: every relative link (and its anchor) resolves,
every repository path they name exists, and every policy they show validates with the installed
plugin, as ``custodian validate`` would. A YAML block that is not a whole policy file is marked
``<!-- fragment -->`` on the line before it, and is skipped on purpose, never by accident.

The checkers return what they found wrong, so that the negative controls below can run them on
small bad pages."""
import copy
import pathlib
import re

import pytest
import yaml
from c7n.config import Config
from c7n.exceptions import PolicyValidationError
from c7n.policy import Policy
from c7n.resources import load_resources
from c7n.schema import generate, validate

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
FRAGMENT = "<!-- fragment -->"
FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w+-]*)")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE_SPAN = re.compile(r"(`+).*?\1", re.S)
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
# Repository paths as the pages name them: policies/x.yml, tests/test_x.py, benchmarks/x.py,
# c7n_apigw_certs/... (not preceded by another path part, so c7n's own tests/... is not one).
REPO_PATH = re.compile(r"(?<![\w/.<-])((?:policies|tests|benchmarks|c7n_apigw_certs)/[\w./-]*\w)")
POLICY_PATH = re.compile(r"(?<![\w/.<-])policies/[\w.-]+\.ya?ml")


def split_blocks(text):
    """(prose lines, [(line number, info, body, line before it)]) of a Markdown text: the
    fenced blocks apart from the prose around them."""
    prose, blocks, lines = [], [], text.split("\n")
    i = 0
    while i < len(lines):
        opened = FENCE.match(lines[i])
        if not opened:
            prose.append(lines[i])
            i += 1
            continue
        fence, info, start = opened.group(1), opened.group(2).lower(), i
        before = next((line.strip() for line in reversed(lines[:i]) if line.strip()), "")
        body, i = [], i + 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        blocks.append((start + 1, info, "\n".join(body), before))
        prose.append("")
        i += 1
    return prose, blocks


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation but - and _ dropped, spaces to -."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path):
    """Every anchor a page has: its headings' slugs (repeats numbered as GitHub does)."""
    found, seen = set(), {}
    for line in split_blocks(path.read_text())[0]:
        heading = HEADING.match(line)
        if heading:
            base = slug(heading.group(2))
            name = base if base not in seen else "%s-%d" % (base, seen[base])
            seen[base] = seen.get(base, 0) + 1
            found.add(name)
    found.update(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", path.read_text()))
    return found


def broken_links(path):
    """Relative links of a page whose file, or whose anchor in that file, does not exist."""
    prose = CODE_SPAN.sub("", "\n".join(split_blocks(path.read_text())[0]))
    broken = []
    for target in LINK.findall(prose):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not ours to check
            continue
        name, _, fragment = target.partition("#")
        linked = (path.parent / name).resolve() if name else path
        if not linked.exists():
            broken.append("%s: no such file %s" % (path.name, target))
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append("%s: no anchor #%s in %s" % (path.name, fragment, linked.name))
    return broken


def missing_paths(path, root=ROOT):
    """Repository paths a page names (policy files above all) that the repository lacks."""
    text = path.read_text()
    named = set(POLICY_PATH.findall(text)) | set(REPO_PATH.findall(text))
    return sorted("%s: %s does not exist" % (path.name, p) for p in named
                  if not (root / p).exists())


def shipped_policies(root=ROOT):
    """{policy name: policy} of every file in policies/."""
    load_resources(("aws.apigw-client-certificate", "aws.rest-stage", "aws.apigwv2-stage"))
    return {p["name"]: p for f in sorted((root / "policies").glob("*.yml"))
            for p in yaml.safe_load(f.read_text())["policies"]}


def invalid_policies(path, shipped):
    """YAML blocks of a page that are not a policy file that validates; a block shown under
    the name of a shipped policy must be that policy. Blocks marked as fragments are skipped."""
    load_resources(("aws.apigw-client-certificate", "aws.rest-stage", "aws.apigwv2-stage"))
    problems = []
    for line, info, body, before in split_blocks(path.read_text())[1]:
        if info not in ("yaml", "yml") or before == FRAGMENT:
            continue
        where = "%s:%d" % (path.name, line)
        try:
            data = yaml.safe_load(body)
        except yaml.YAMLError as error:
            problems.append("%s: not YAML: %s" % (where, error))
            continue
        if not isinstance(data, dict) or "policies" not in data:
            problems.append("%s: a YAML block without policies: (mark it %s)" % (where, FRAGMENT))
            continue
        errors = validate(data, generate())
        if errors:
            problems.append("%s: %s" % (where, errors[0]))
            continue
        for policy in data["policies"]:
            if policy["name"] in shipped and policy != shipped[policy["name"]]:
                problems.append("%s: %s differs from the shipped policy of that name" % (
                    where, policy["name"]))
            try:  # on a copy: validation completes a Lambda mode in place (handler.py)
                Policy(copy.deepcopy(policy), Config.empty(
                    region="us-east-1", account_id="123456789012")).validate()
            except PolicyValidationError as error:
                problems.append("%s: %s" % (where, error))
    return problems


def test_the_pages_are_found():
    names = {p.name for p in PAGES}
    assert {"README.md", "audit.md", "rotation.md", "trust.md", "templates.md",
            "lambda-and-config.md", "signals.md", "iam.md", "sandbox.md", "measured.md",
            "aws-behaviour.md", "demo.md", "contributing.md"} <= names


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(path):
    assert broken_links(path) == []


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_every_named_path_exists(path):
    assert missing_paths(path) == []


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_every_policy_shown_validates(path):
    assert invalid_policies(path, shipped_policies()) == []


def test_the_readme_reaches_every_page_in_one_click():
    linked = {(ROOT / t.partition("#")[0]).resolve()
              for t in LINK.findall((ROOT / "README.md").read_text())}
    assert {p.resolve() for p in PAGES[1:]} <= linked


def test_the_readme_stays_short_and_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    first = split_blocks(text)[1][0]
    assert [line.split("#")[0].strip() for line in first[2].splitlines()] == [
        "make demo", "make test"]


# Negative controls: each checker finds what is wrong on a small bad page, and only that.

def test_a_broken_link_and_a_missing_anchor_are_found(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## A `section`: here\n")
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n[ok](other.md) [ok](other.md#a-section-here) [ok](#page)\n"
                    "[web](https://example.com/x) `[code](nowhere.md)`\n\n"
                    "```\n[in a block](nowhere.md)\n```\n\n"
                    "[gone](missing.md) [no anchor](other.md#nothing) [here](#nothing-here)\n")
    assert broken_links(page) == ["page.md: no such file missing.md",
                                  "page.md: no anchor #nothing in other.md",
                                  "page.md: no anchor #nothing-here in page.md"]


def test_a_missing_policy_file_is_found(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("Run `policies/expiring.yml`, then policies/no-such-policy.yml; see\n"
                    "tests/test_no_such.py and c7n's own c7n/tests/test_policy.py.\n")
    assert missing_paths(page) == ["page.md: policies/no-such-policy.yml does not exist",
                                   "page.md: tests/test_no_such.py does not exist"]


def test_an_invalid_policy_is_found(tmp_path):
    good = ("policies:\n  - name: shown-audit\n    resource: aws.apigw-client-certificate\n"
            "    filters:\n      - type: expiring\n        days: 30\n")
    bad_schema = good.replace("days: 30", "days: -1")
    bad_filter = good.replace("type: expiring", "type: no-such-filter")
    page = tmp_path / "page.md"
    page.write_text("\n\n".join([
        "```yaml\n%s```" % good,
        "```yaml\n%s```" % bad_schema,
        "```yaml\n%s```" % bad_filter,
        "```yaml\n    source: config\n```",
        "%s\n```yaml\n    source: config\n```" % FRAGMENT,
        "```yaml\n%s```" % good.replace("shown-audit", "apigw-client-certificates-expiring"),
    ]) + "\n")
    problems = invalid_policies(page, shipped_policies())
    assert [p.split(":")[1] for p in problems] == ["10", "19", "28", "37"]
    assert "-1" in problems[0] and "no-such-filter" in problems[1]
    assert "without policies:" in problems[2]
    assert "differs from the shipped policy" in problems[3]
