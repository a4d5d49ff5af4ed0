"""The Terraform of infra/, checked offline. Providers and modules cannot be downloaded here, so
`terraform init`, `validate` and `plan` cannot run (they need an AWS account and the registry): what
can be checked is, for real: formatting, that every file parses (python-hcl2, the parser checkov
uses), checkov's Terraform checks with none failed and every skip justified, and the contract with
the workflow and the chart (outputs named as the repository variables, typed and described
variables, exact version pins)."""
import json
import os
import re
import shutil
import subprocess

from conftest import ROOT, checkov

INFRA = ROOT / "infra"
VENV = ROOT / ".tools" / "venv" / "bin"


def parsed():
    """Every .tf file of infra/ as python-hcl2 reads it: {file name: document}."""
    script = ("import hcl2, json, pathlib, sys\n"
              "print(json.dumps({p.name: hcl2.load(open(p)) for p in sorted(pathlib.Path(sys.argv[1]).glob('*.tf'))}))")
    out = subprocess.run([str(VENV / "python"), "-c", script, str(INFRA)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def blocks(kind):
    return [block for doc in parsed().values() for block in doc.get(kind, [])]


def value(attribute):
    """checkov's python-hcl2 wraps attribute values in one-element lists."""
    return attribute[0] if isinstance(attribute, list) and len(attribute) == 1 else attribute


def test_terraform_fmt_is_clean():
    terraform = shutil.which("terraform")
    assert terraform, "terraform is on this kind of machine's image; install it to run this check"
    out = subprocess.run([terraform, "fmt", "-check", "-recursive", "-diff", str(INFRA)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_file_parses_and_the_root_module_is_complete():
    files = parsed()
    assert {"versions.tf", "variables.tf", "main.tf", "outputs.tf"} <= set(files)
    resources = {kind for doc in files.values() for block in doc.get("resource", []) for kind in block}
    assert {"aws_ecr_repository", "aws_ecr_lifecycle_policy", "aws_acm_certificate", "aws_kms_key",
            "helm_release", "aws_iam_policy"} <= resources
    modules = {name: body for block in blocks("module") for name, body in block.items()}
    assert {"vpc", "eks", "load_balancer_controller_role", "github_oidc_provider", "deploy_role"} <= set(modules)


def test_versions_are_pinned_exactly():
    terraform = blocks("terraform")
    assert any(value(t.get("required_version")) for t in terraform)
    providers = [value(p) for t in terraform for block in t.get("required_providers", []) for p in block.values()]
    assert providers and all(re.fullmatch(r"\d+\.\d+\.\d+", value(p["version"])) for p in providers), providers
    for name, body in ((n, b) for block in blocks("module") for n, b in block.items()):
        assert re.fullmatch(r"\d+\.\d+\.\d+", value(body.get("version", ""))), f"module {name} is not pinned"
    releases = [r for block in blocks("resource") for r in block.get("helm_release", {}).values()]
    assert len(releases) == 2
    for release in releases:
        assert re.fullmatch(r"\d+\.\d+\.\d+", value(release["version"])), release["chart"]


def test_every_variable_is_typed_and_described():
    variables = {name: body for block in blocks("variable") for name, body in block.items()}
    assert len(variables) >= 10
    for name, body in variables.items():
        assert value(body.get("type")) and value(body.get("description")), name


def test_outputs_are_the_workflows_repository_variables():
    outputs = {name for block in blocks("output") for name in block}
    workflow = "".join(p.read_text() for p in (ROOT / ".github" / "workflows").glob("*.yml"))
    # DEPLOY_MODE is a choice; STATE_BUCKET is the backend's, set by `setup-aws.sh outputs` too.
    used = set(re.findall(r"vars\.([A-Z_]+)", workflow)) - {"DEPLOY_MODE", "STATE_BUCKET"}
    assert used and used <= outputs, used - outputs
    assert {"CERTIFICATE_ARN", "VPC_CIDR", "ECR_APP_REPOSITORY", "ECR_NGINX_REPOSITORY"} <= outputs
    for block in blocks("output"):
        for name, body in block.items():
            assert value(body.get("description")), name


def test_checkov_finds_nothing_and_every_skip_is_justified():
    failed, passed = checkov("terraform", "-d", INFRA)
    assert failed == [] and passed > 30, failed
    for path in INFRA.glob("*.tf"):
        for skip in re.findall(r"checkov:skip=.*", path.read_text()):
            assert re.fullmatch(r"checkov:skip=CKV[0-9]*_[A-Z0-9_]+: \S.{20,}", skip), f"{path.name}: {skip}"


def setup_aws(*args, env=None):
    # No credentials and no instance metadata: the AWS CLI gives up before any network call.
    base = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
    aws = shutil.which("aws")
    if aws:
        base["PATH"] = f"{os.path.dirname(aws)}:{base['PATH']}"
    return subprocess.run(["/bin/bash", str(ROOT / "scripts" / "setup-aws.sh"), *args], env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=60)


def test_setup_aws_says_what_is_missing_clearly():
    help_text = setup_aws("--help")
    assert help_text.returncode == 0
    for command in ("check", "bootstrap", "plan", "apply", "kubeconfig", "outputs", "fix", "destroy"):
        assert f"setup-aws.sh {command}" in help_text.stdout, command
    assert setup_aws("bogus").returncode == 2
    # Only the system's folders: neither terraform (/usr/local/bin here) nor the AWS CLI.
    no_tools = setup_aws("check", env={"PATH": "/usr/bin:/bin"})
    assert no_tools.returncode == 1 and "missing: terraform" in no_tools.stderr and "missing: aws" in no_tools.stderr
    no_plan = setup_aws("apply")
    assert no_plan.returncode == 1 and "run scripts/setup-aws.sh plan first" in no_plan.stderr
    if shutil.which("aws") and shutil.which("kubectl"):
        no_credentials = setup_aws("check")
        assert no_credentials.returncode == 1 and "no AWS credentials" in no_credentials.stderr, no_credentials.stderr
