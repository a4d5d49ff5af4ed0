"""The AWS side, run for real against an emulator: moto's server (PyPI `moto[server]`, in .tools/aws)
on loopback, and this machine's Terraform with the hashicorp/aws provider from a filesystem mirror
(no registry is reachable). `Emulated` copies infra/, scripts/ and k8s/platform/ into a temp dir
(setup-aws.sh writes there), points the provider, the S3 backend and the AWS CLI at the emulator,
and drives scripts/setup-aws.sh and terraform as an operator would."""
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from conftest import ROOT, free_port, wait_for

AWS_TOOLS = ROOT / ".tools" / "aws" / "bin"
PROVIDER = "registry.terraform.io/hashicorp/aws"
PROVIDER_VERSION = "5.100.0"
REGION = "eu-west-1"
ZONES = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
REPOSITORY = "acme/counter-fcgi"
OPERATOR_CIDR = "203.0.113.7/32"

# Resource types the emulator answers 404 for: planned (and checked in the plan), left out of the
# apply with -target, and said so.
NOT_EMULATED = {
    "aws_eks_addon": "moto has no EKS add-ons (CreateAddon answers 404)",
    "aws_eks_access_entry": "moto has no EKS access entries (CreateAccessEntry answers 404)",
    "aws_eks_access_policy_association": "moto has no EKS access entries (AssociateAccessPolicy answers 404)",
    "aws_eks_pod_identity_association": "moto has no EKS Pod Identity (CreatePodIdentityAssociation answers 404)",
}

# Attributes moto does not store or invents, which would read back as a change on every plan. Only
# these are ignored (in the emulator's override file, never in infra/): any other difference on a
# re-plan is a perpetual diff of ours and fails the test.
EMULATOR_GAPS = {
    "aws_eks_cluster.this": (["access_config", "upgrade_policy"],
                             "DescribeCluster returns neither bootstrapClusterCreatorAdminPermissions nor upgradePolicy"),
    "aws_eks_node_group.zone": (["remote_access", "update_config"],
                                "moto invents an SSH key and drops the update config"),
    "aws_launch_template.node": (["tag_specifications"],
                                 "moto stores the provider's default tags as a launch-template tag specification"),
}

SERVICES = ["acm", "autoscaling", "ec2", "ecr", "eks", "elbv2", "iam", "kms", "logs", "route53", "s3", "sts"]


def provider_mirror():
    """The folder above registry.terraform.io/ that holds the AWS provider."""
    for candidate in (os.environ.get("TF_PROVIDER_MIRROR"), "/opt/tf-plugins", "/usr/share/terraform/plugins",
                      "/usr/local/share/terraform/plugins"):
        if candidate and (Path(candidate) / PROVIDER / PROVIDER_VERSION).is_dir():
            return Path(candidate)
    found = subprocess.run(["find", "/", "-xdev", "-path", f"*/{PROVIDER}/{PROVIDER_VERSION}", "-type", "d"],
                           capture_output=True, text=True, timeout=120).stdout.split()
    assert found, f"no {PROVIDER} {PROVIDER_VERSION} mirror on this machine (see docs/aws.md, verified here)"
    return Path(found[0]).parents[2]


class Moto:
    """moto_server on a loopback port, over TLS with a certificate made here (the state bucket's
    policy refuses plain HTTP, as it must), stopped by its PID."""

    def __init__(self, tmp: Path):
        binary = AWS_TOOLS / "moto_server"
        assert binary.exists(), "moto is missing: scripts/setup-containers.sh installs it into .tools/aws"
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.ca = tmp / "moto.crt"
        key = tmp / "moto.key"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(self.ca)],
                       check=True, capture_output=True, timeout=60)
        self.log = open(tmp / "moto.log", "w")
        # AWS's managed policies (AmazonEKSClusterPolicy, ...) exist in moto only when asked for.
        self.proc = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(self.port), "-s", "-c", str(self.ca),
                                      "-k", str(key)], stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"})

        def up():
            try:
                import ssl
                import urllib.request
                urllib.request.urlopen(self.url + "/moto-api/", timeout=1, context=ssl.create_default_context(cafile=self.ca))
                return True
            except OSError:
                return False
        wait_for(up, timeout=30, interval=0.2, what="moto_server")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def override(moto_url):
    """The emulator's override file: endpoints and test credentials for the provider, the S3 backend
    on the emulator, and the ignore list of EMULATOR_GAPS."""
    endpoints = "\n".join(f'    {service} = "{moto_url}"' for service in SERVICES)
    text = f'''provider "aws" {{
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  s3_use_path_style           = true
  endpoints {{
{endpoints}
  }}
}}

terraform {{
  backend "s3" {{
    use_lockfile                = true
    encrypt                     = true
    use_path_style              = true
    skip_credentials_validation = true
    skip_requesting_account_id  = true
    skip_metadata_api_check     = true
    endpoints = {{
      s3  = "{moto_url}"
      sts = "{moto_url}"
    }}
  }}
}}
'''
    for address, (attributes, _) in EMULATOR_GAPS.items():
        kind, name = address.split(".")
        text += f'\nresource "{kind}" "{name}" {{\n  lifecycle {{\n    ignore_changes = [{", ".join(attributes)}]\n  }}\n}}\n'
    return text


class Emulated:
    """infra/ and setup-aws.sh in a temp copy, against moto."""

    def __init__(self, tmp: Path, moto: Moto):
        self.root = tmp / "repo"
        for part in ("infra", "scripts", "k8s/platform"):
            shutil.copytree(ROOT / part, self.root / part, ignore=shutil.ignore_patterns(".terraform*", "tfplan", "*.tfstate*"))
        self.infra = self.root / "infra"
        (self.infra / "emulator_override.tf").write_text(override(moto.url))
        self.tfvars = self.infra / "env" / "emulated.tfvars"
        self.tfvars.write_text(
            f'region = "{REGION}"\navailability_zones = {json.dumps(ZONES)}\nhost = "counter.emulated.test"\n'
            f'github_repository = "{REPOSITORY}"\npublic_api_cidrs = ["{OPERATOR_CIDR}"]\ndeploy_mode = "gitops"\n')
        cli = tmp / "terraform.rc"
        cli.write_text(f'provider_installation {{\n  filesystem_mirror {{\n    path    = "{provider_mirror()}"\n'
                       f'    include = ["{PROVIDER}"]\n  }}\n  direct {{\n    exclude = ["{PROVIDER}"]\n  }}\n}}\n')
        # No cluster can be reached here: kubectl is a stand-in that says so (as kubectl does for an
        # API that does not answer), so nothing ever resolves the emulator's made-up cluster name.
        fake = tmp / "bin"
        fake.mkdir()
        (fake / "kubectl").write_text('#!/bin/sh\necho "Unable to connect to the server: no cluster in the emulator" >&2\nexit 1\n')
        (fake / "kubectl").chmod(0o755)
        terraform = shutil.which("terraform")
        assert terraform, "terraform is on this kind of machine's image"
        self.env = {
            "PATH": f"{fake}:{AWS_TOOLS}:{os.path.dirname(terraform)}:/usr/bin:/bin",
            "HOME": str(tmp), "TF_CLI_CONFIG_FILE": str(cli), "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1",
            "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": moto.url, "AWS_CONFIG_FILE": str(tmp / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "none"),
            "AWS_EC2_METADATA_DISABLED": "true", "KUBECONFIG": str(tmp / "kubeconfig"),
            "AWS_CA_BUNDLE": str(moto.ca), "TFVARS": str(self.tfvars), "OPERATOR_CIDR": OPERATOR_CIDR,
        }

    def run(self, *command, input=None, timeout=600, env=None):
        return subprocess.run(list(map(str, command)), cwd=self.infra, env={**self.env, **(env or {})}, input=input,
                              capture_output=True, text=True, timeout=timeout)

    def setup_aws(self, *args, **kwargs):
        return self.run("/bin/bash", self.root / "scripts" / "setup-aws.sh", *args, **kwargs)

    def terraform(self, *args, **kwargs):
        return self.run("terraform", *args, **kwargs)

    def json(self, *args):
        out = self.terraform("show", "-json", *args)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def aws(self, *args):
        out = self.run("aws", *args, "--output", "json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout or "null")

    def timed(self, *args, **kwargs):
        start = time.monotonic()
        out = self.setup_aws(*args, **kwargs)
        return out, time.monotonic() - start
