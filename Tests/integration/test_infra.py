"""The Terraform of infra/, run for real: validated, planned, applied against an AWS emulator (moto
on loopback), re-planned (no perpetual diff), and destroyed, all through scripts/setup-aws.sh as an
operator runs it; then the plan and the applied state are checked against what the workflows, the
chart and the cluster need (OIDC subjects per job, least-privilege roles, add-ons, outputs). What
the emulator cannot create (EKS add-ons, access entries) is planned and checked in the plan, and
left out of the apply with a printed reason (awsemu.NOT_EMULATED)."""
import fnmatch
import json
import re
import shutil
import subprocess
import time
from collections import defaultdict

import pytest
import yaml

from awsemu import NOT_EMULATED, OPERATOR_CIDR, REPOSITORY, ZONES, Emulated, Moto
from conftest import ROOT, checkov
from test_chart import K8S_VERSION

INFRA = ROOT / "infra"
WORKFLOWS = ROOT / ".github" / "workflows"
ADDONS = {"vpc-cni", "kube-proxy", "coredns", "aws-ebs-csi-driver", "metrics-server", "eks-pod-identity-agent"}


def resources(document, key="planned_values"):
    """{address: values} of every managed resource in a plan's planned values or a state's values."""
    found = {}

    def walk(module):
        for resource in module.get("resources", []):
            if resource["mode"] == "managed":
                found[resource["address"]] = resource["values"]
        for child in module.get("child_modules", []):
            walk(child)
    walk(document[key]["root_module"])
    return found


# The provider's service names, as IAM's action prefixes.
IAM_PREFIX = {"EC2": "ec2", "EKS": "eks", "IAM": "iam", "KMS": "kms", "ECR": "ecr", "ACM": "acm", "CloudWatch Logs": "logs",
              "S3": "s3", "STS": "sts", "Route 53": "route53"}


def provider_calls(log):
    """The AWS API calls in a provider debug log, as IAM actions ({"ec2:DescribeVpcs", ...})."""
    calls = set()
    for entry in re.split(r"\n(?=\d{4}-\d\d-\d\dT)", log):
        if "HTTP Response Received" not in entry:
            continue
        service = re.search(r'rpc\.service=("[^"]*"|\S+)', entry)
        method = re.search(r"rpc\.method=(\S+)", entry)
        if service and method:
            calls.add(f"{IAM_PREFIX[service.group(1).strip(chr(34))]}:{method.group(1)}")
    return calls


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory):
    """The whole life of the infrastructure against the emulator, recorded for the tests below."""
    tmp = tmp_path_factory.mktemp("aws")
    moto = Moto(tmp)
    record = {}
    try:
        emu = Emulated(tmp, moto)
        record["emu"] = emu
        record["validate"] = emu.terraform("init", "-backend=false", "-input=false"), emu.terraform("validate", "-no-color")
        record["check"] = ok(emu.setup_aws("check"))
        record["bootstrap"] = ok(emu.setup_aws("bootstrap"))
        bucket = f"counter-api-tfstate-{emu.aws('sts', 'get-caller-identity')['Account']}"
        record["bucket"] = bucket
        record["versioning"] = emu.aws("s3api", "get-bucket-versioning", "--bucket", bucket)
        record["bucket_policy"] = json.loads(emu.aws("s3api", "get-bucket-policy", "--bucket", bucket)["Policy"])
        # moto reads the TLS-only statement as a deny of every request, its own TLS included (it
        # does not evaluate aws:SecureTransport): checked above, then lifted in the emulator only.
        print("state bucket: the TLS-only policy is set, then deleted in the emulator (moto denies every request under it)")
        emu.aws("s3api", "delete-bucket-policy", "--bucket", bucket)
        # The whole plan, then the apply of what the emulator has.
        record["plan"] = ok(emu.setup_aws("plan", "-no-color"))
        plan = emu.json("tfplan")
        record["plan_json"] = plan
        left_out = {rc["address"]: NOT_EMULATED[rc["type"]] for rc in plan["resource_changes"]
                    if rc["mode"] == "managed" and rc["type"] in NOT_EMULATED}
        targets = [f"-target={rc['address']}" for rc in plan["resource_changes"]
                   if rc["mode"] == "managed" and rc["address"] not in left_out]
        record["left_out"] = left_out
        record["targets"] = targets
        for address, why in sorted(left_out.items()):
            print(f"planned, not applied: {address}: {why}")
        ok(emu.setup_aws("plan", "-no-color", *targets))
        record["apply"], record["apply_seconds"] = emu.timed("apply")
        ok(record["apply"])
        # A targeted apply writes only the outputs of what it targeted: one refresh-only run writes
        # the rest (those of variables alone), as the untargeted apply on AWS does.
        ok(emu.terraform("apply", "-refresh-only", "-auto-approve", "-input=false", f"-var-file={emu.tfvars}"))
        # Again: nothing may change (no perpetual diff), then what is left is exactly the left-out set.
        record["replan"] = emu.setup_aws("plan", "-no-color", "-detailed-exitcode", *targets)
        record["state"] = emu.json()
        # The full plan of a pull request, logging every AWS call the provider makes for it.
        calls_log = tmp / "plan-calls.log"
        ok(emu.setup_aws("plan", "-no-color", env={"TF_LOG_PROVIDER": "DEBUG", "TF_LOG_PATH": str(calls_log)}))
        record["plan_calls"] = provider_calls(calls_log.read_text())
        record["rest_json"] = emu.json("tfplan")
        ok(emu.setup_aws("plan", "-no-color", "-var", "deploy_mode=push"))
        record["push_json"] = emu.json("tfplan")
        (emu.infra / "tfplan").unlink()
        graph = emu.terraform("graph", "-type=plan")
        record["graph"] = graph.stdout
        record["outputs"] = emu.setup_aws("outputs")
        # An image in a repository, as the pipeline leaves them.
        manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                               "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1,
                                          "digest": "sha256:" + "1" * 64}, "layers": []})
        emu.aws("ecr", "put-image", "--repository-name", "counter-fcgi", "--image-tag", "abc123", "--image-manifest", manifest)
        record["destroy_needs_cluster"] = emu.setup_aws("destroy", input="counter-api\n")
        record["destroy_keeps_images"] = emu.setup_aws("destroy", input="counter-api\nno\n", env={"CLUSTER_GONE": "1"})
        record["repositories_kept"] = emu.aws("ecr", "describe-repositories")["repositories"]
        record["destroy"], record["destroy_seconds"] = emu.timed("destroy", input="counter-api\ndelete images\n",
                                                                 env={"CLUSTER_GONE": "1"})
        record["state_after"] = emu.terraform("state", "list")
        record["repositories_after"] = emu.aws("ecr", "describe-repositories")["repositories"]
        record["vpcs_after"] = emu.aws("ec2", "describe-vpcs", "--filters", "Name=tag:Project,Values=counter-api")["Vpcs"]
        record["clusters_after"] = emu.aws("eks", "list-clusters")["clusters"]
        print(f"emulator: {len(targets)} of {len(targets) + len(left_out)} planned resources applied in "
              f"{record['apply_seconds']:.1f} s, destroyed in {record['destroy_seconds']:.1f} s")
        yield record
    finally:
        moto.stop()


def ok(result):
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


# --- the life cycle ------------------------------------------------------------------------------

def test_terraform_fmt_is_clean():
    terraform = shutil.which("terraform")
    assert terraform, "terraform is on this kind of machine's image"
    out = subprocess.run([terraform, "fmt", "-check", "-recursive", "-diff", str(INFRA)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_init_and_validate_without_a_backend(lifecycle):
    init, validate = lifecycle["validate"]
    ok(init)
    assert "The configuration is valid" in ok(validate).stdout


def test_check_and_bootstrap_make_a_safe_state_bucket(lifecycle):
    check = ok(lifecycle["check"])
    assert "ready: account" in check.stderr and f"your address {OPERATOR_CIDR} may reach" in check.stderr
    # The emulator cannot say which versions EKS supports: the check says it could not ask.
    assert "Kubernetes 1." in check.stderr
    ok(lifecycle["bootstrap"])
    assert lifecycle["versioning"]["Status"] == "Enabled"
    statement = lifecycle["bucket_policy"]["Statement"][0]
    assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_apply_against_the_emulator_then_nothing_changes(lifecycle):
    ok(lifecycle["plan"])
    apply = ok(lifecycle["apply"])
    assert "Apply complete!" in apply.stdout
    # No cluster answers here: the Argo CD bootstrap says what it needs instead of failing the apply.
    assert "needs a real cluster" in apply.stderr
    replan = lifecycle["replan"]
    assert replan.returncode == 0, "a re-plan after apply must be empty (exit 0, not 2):\n" + replan.stdout[-4000:]
    assert "No changes." in replan.stdout
    applied = set(resources(lifecycle["state"], "values"))
    assert len(applied) == len(lifecycle["targets"]) >= 60
    # What the emulator lacks is all that remains to create; everything else exists.
    rest = {rc["address"] for rc in lifecycle["rest_json"]["resource_changes"]
            if rc["mode"] == "managed" and rc["change"]["actions"] != ["no-op"]}
    assert rest == set(lifecycle["left_out"]), rest ^ set(lifecycle["left_out"])
    assert {address.split(".")[0] for address in rest} == {"aws_eks_addon"}


def test_destroy_asks_twice_then_leaves_nothing(lifecycle):
    # Without the cluster's API the ALB and volumes cannot be deleted first: it stops and says so.
    needs = lifecycle["destroy_needs_cluster"]
    assert needs.returncode == 1 and "needs the real cluster's API" in needs.stderr and "CLUSTER_GONE=1" in needs.stderr
    kept = lifecycle["destroy_keeps_images"]
    assert kept.returncode == 1 and "hold 1 images" in kept.stderr and "the images stay" in kept.stderr
    assert {r["repositoryName"] for r in lifecycle["repositories_kept"]} == {"counter-fcgi", "counter-nginx", "redis"}
    destroy = ok(lifecycle["destroy"])
    assert "Destroy complete!" in destroy.stdout
    assert ok(lifecycle["state_after"]).stdout.strip() == ""
    assert lifecycle["repositories_after"] == [] and lifecycle["vpcs_after"] == [] and lifecycle["clusters_after"] == []


# --- what the workflows' jobs may assume -----------------------------------------------------------

def oidc_jobs(mode):
    """Every job step that assumes an AWS role in this deploy mode: (workflow/job, output name of the
    role, token subject)."""
    jobs = []
    for path in sorted(WORKFLOWS.glob("*.yml")):
        workflow = yaml.safe_load(path.read_text())
        events = workflow.get("on", workflow.get(True))
        for name, job in workflow["jobs"].items():
            for step in job.get("steps", []):
                if "configure-aws-credentials" not in step.get("uses", ""):
                    continue
                role = re.fullmatch(r"\$\{\{ vars\.([A-Z_]+) \}\}", step["with"]["role-to-assume"]).group(1)
                assert job.get("permissions", {}).get("id-token") == "write", f"{path.name}/{name}"
                condition = f"{job.get('if', '')} {step.get('if', '')}"
                if f"vars.DEPLOY_MODE == '{'gitops' if mode == 'push' else 'push'}'" in condition \
                        or f"vars.DEPLOY_MODE != '{mode}'" in condition:
                    continue  # a job of the other mode
                runs_on = {event for event in events
                           if f"github.event_name == '{event}'" in condition or "github.event_name ==" not in condition}
                environment = job.get("environment")
                if isinstance(environment, dict):
                    environment = environment["name"]
                for event in sorted(runs_on):
                    if environment:
                        subject = f"repo:{REPOSITORY}:environment:{environment}"
                    elif event == "pull_request":
                        subject = f"repo:{REPOSITORY}:pull_request"
                    else:
                        branches = events[event]["branches"]
                        assert branches == ["main"], f"{path.name}/{name}: a role for {branches}"
                        subject = f"repo:{REPOSITORY}:ref:refs/heads/main"
                    jobs.append((f"{path.name}/{name}", role, subject))
    return jobs


def accepts(trust, provider, claims):
    """Whether a trust policy lets a web identity token with these claims assume the role."""
    for statement in trust["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if statement["Effect"] != "Allow" or "sts:AssumeRoleWithWebIdentity" not in actions:
            continue
        if statement["Principal"].get("Federated") != provider:
            continue
        conditions = statement.get("Condition", {})
        keys = {key for operator in conditions.values() for key in operator}
        if not {"token.actions.githubusercontent.com:sub", "token.actions.githubusercontent.com:aud"} <= keys:
            continue  # a GitHub trust without both claims checked is never acceptable
        held = True
        for operator, tests in conditions.items():
            for key, values in tests.items():
                values = values if isinstance(values, list) else [values]
                claim = claims.get(key.split(":")[-1])
                if operator == "StringEquals":
                    held &= claim in values
                elif operator == "StringLike":
                    held &= any(fnmatch.fnmatchcase(claim or "", pattern) for pattern in values)
                else:
                    held = False
        if held:
            return True
    return False


def github_roles(values, outputs):
    """{role arn: (trust policy, output name)} of the roles that trust GitHub's OIDC provider."""
    provider = next(v["arn"] for a, v in values.items() if a.startswith("aws_iam_openid_connect_provider.github"))
    by_arn = {v: k for k, v in outputs.items() if isinstance(v, str) and v}
    roles = {}
    for address, role in values.items():
        if address.startswith("aws_iam_role.") and provider in (role.get("assume_role_policy") or ""):
            roles[role["arn"]] = (json.loads(role["assume_role_policy"]), by_arn.get(role["arn"]), address)
    return provider, roles


def check_oidc(values, outputs, mode):
    provider, roles = github_roles(values, outputs)
    used = defaultdict(set)
    for job, output, subject in oidc_jobs(mode):
        arn = outputs.get(output)
        assert arn, f"{job}: role-to-assume reads vars.{output}, which is no output (or empty) of infra/"
        trust, _, address = roles[arn]
        assert accepts(trust, provider, {"sub": subject, "aud": "sts.amazonaws.com"}), f"{job} ({subject}) cannot assume {address}"
        assert not accepts(trust, provider, {"sub": subject, "aud": "sigstore"}), f"{address} accepts any audience"
        used[arn].add(subject)
    for arn, (trust, output, address) in roles.items():
        assert used[arn], f"{address} trusts GitHub but no job uses it"
        subjects = {v for s in trust["Statement"] for v in listed(s["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"])}
        assert not any("StringLike" in s.get("Condition", {}) for s in trust["Statement"]), f"{address}: wildcard subjects"
        assert subjects <= used[arn], f"{address} accepts {subjects - used[arn]}, which no job that uses it has"
    return roles


def test_every_job_can_assume_its_role_and_no_role_accepts_more_gitops(lifecycle):
    state = lifecycle["state"]
    outputs = {k: v["value"] for k, v in state["values"]["outputs"].items()}
    roles = check_oidc(resources(state, "values"), outputs, "gitops")
    assert {output for _, output, _ in roles.values()} == {"IMAGES_ROLE_ARN", "PLAN_ROLE_ARN"}
    assert outputs["DEPLOY_ROLE_ARN"] == ""


def test_every_job_can_assume_its_role_and_no_role_accepts_more_push(lifecycle):
    plan = lifecycle["push_json"]
    values = resources(plan)
    # The push-mode plan on the applied state: the new deploy role's ARN is known only at apply, so
    # it stands in under the name AWS gives it.
    outputs = {k: v["value"] for k, v in lifecycle["state"]["values"]["outputs"].items()}
    deploy = values["aws_iam_role.ci[\"deploy\"]"]
    deploy["arn"] = outputs["IMAGES_ROLE_ARN"].replace("counter-api-images", deploy["name"])
    outputs["DEPLOY_ROLE_ARN"] = deploy["arn"]
    roles = check_oidc(values, outputs, "push")
    assert {output for _, output, _ in roles.values()} == {"IMAGES_ROLE_ARN", "PLAN_ROLE_ARN", "DEPLOY_ROLE_ARN"}
    # Inside the cluster the deploy role is only its group, bound to a Role in the service's namespace
    # (k8s/platform/deploy-access, checked in test_chart.py): no cluster-wide access policy.
    entry = values["aws_eks_access_entry.deploy[0]"]
    assert entry["kubernetes_groups"] == ["counter-api:deployers"] and entry["type"] == "STANDARD"
    assert not [a for a in values if a.startswith("aws_eks_access_policy_association.")]


# --- least privilege ---------------------------------------------------------------------------------

def role_policy(values, role):
    """The statements of a CI role's inline policy, and its attached managed policies."""
    policy = json.loads(values[f'aws_iam_role_policy.ci["{role}"]']["policy"])
    attached = [v["policy_arn"] for a, v in values.items()
                if a.startswith("aws_iam_role_policy_attachment.") and v["role"] == f"counter-api-{role}"]
    return [s for s in policy["Statement"]], attached


def listed(value):
    return value if isinstance(value, list) else [value]


def test_the_images_role_pushes_to_our_repositories_and_nothing_else(lifecycle):
    values = resources(lifecycle["state"], "values")
    statements, attached = role_policy(values, "images")
    assert attached == []
    # Our two images and the Redis mirror (the images job copies Redis there by digest).
    repositories = {values[f'aws_ecr_repository.image["{n}"]']["arn"] for n in ("counter-fcgi", "counter-nginx", "redis")}
    key = values['aws_kms_key.this["ecr"]']["arn"]
    pushes = set()
    for statement in statements:
        assert statement["Effect"] == "Allow"
        for action in listed(statement["Action"]):
            assert "*" not in action, action
            for resource in listed(statement["Resource"]):
                if action == "ecr:GetAuthorizationToken":
                    continue  # takes no resource
                assert resource in repositories | {key}, (action, resource)
                if action == "ecr:PutImage":
                    pushes.add(resource)
    assert pushes == repositories


def test_the_deploy_role_reads_images_and_finds_the_cluster_only(lifecycle):
    values = resources(lifecycle["push_json"])
    statements, attached = role_policy(values, "deploy")
    assert attached == []
    actions = {a for s in statements for a in listed(s["Action"])}
    assert "eks:DescribeCluster" in actions and "ecr:BatchGetImage" in actions
    assert not {a for a in actions if re.search(r":(Put|Upload|Initiate|Complete|Delete|Create)", a)}, actions
    cluster = resources(lifecycle["state"], "values")["aws_eks_cluster.this"]["arn"]
    assert all(listed(s["Resource"]) == [cluster] for s in statements if "eks:DescribeCluster" in listed(s["Action"]))


def test_the_plan_role_reads_the_state_and_describes_nothing_more(lifecycle):
    values = resources(lifecycle["state"], "values")
    outputs = lifecycle["state"]["values"]["outputs"]
    statements, attached = role_policy(values, "plan")
    assert attached == [], "no managed policy (ReadOnlyAccess reads every S3 object of the account)"
    infra_workflow = (WORKFLOWS / "infra.yml").read_text()
    key = re.search(r'-backend-config="key=([^"]+)"', infra_workflow).group(1)
    state_object = f"arn:aws:s3:::{outputs['STATE_BUCKET']['value']}/{key}"
    reads = set()
    for statement in statements:
        for action in listed(statement["Action"]):
            service, verb = action.split(":")
            assert "*" not in action, action
            assert service not in {"secretsmanager", "ssm"} and action != "kms:Decrypt", action
            assert not re.match(r"(Put|Create|Delete|Update|Attach|Detach|Tag|Untag|Set|Modify|Associate|Run|Start|Stop"
                                r"|Terminate|Authorize|Revoke|Register|Upload|Pass|Assume)", verb), action
            if action == "s3:GetObject":
                reads.update(listed(statement["Resource"]))
    assert reads == {state_object}


def test_the_plan_role_may_make_every_call_a_plan_makes(lifecycle):
    """A pull request's plan refreshes everything in the state: every call the provider made for the
    full plan here is allowed by the plan role (so its plan cannot fail on a denied read)."""
    statements, _ = role_policy(resources(lifecycle["state"], "values"), "plan")
    allowed = {a for s in statements if s["Effect"] == "Allow" for a in listed(s["Action"])}
    # The provider asks iam:GetUser first for the caller's ARN and falls back to STS when refused.
    calls = lifecycle["plan_calls"] - {"iam:GetUser"}
    assert len(calls) > 25 and {"ec2:DescribeVpcs", "eks:DescribeCluster", "iam:GetRole"} <= calls, sorted(calls)
    assert calls <= allowed, sorted(calls - allowed)


# --- the ten first-deploy defects, each checked where it would show --------------------------------

def test_add_ons_are_managed_with_their_own_roles(lifecycle):
    values = resources(lifecycle["rest_json"])
    applied = resources(lifecycle["state"], "values")
    addons = {v["addon_name"]: v for a, v in values.items() if a.startswith("aws_eks_addon.")}
    assert set(addons) == ADDONS
    assert json.loads(addons["vpc-cni"]["configuration_values"]) == {"enableNetworkPolicy": "true"}
    issuer = applied["aws_eks_cluster.this"]["identity"][0]["oidc"][0]["issuer"].removeprefix("https://")
    provider = applied["aws_iam_openid_connect_provider.cluster"]["arn"]
    for addon, account in (("vpc-cni", "kube-system:aws-node"), ("aws-ebs-csi-driver", "kube-system:ebs-csi-controller-sa")):
        role = next(v for v in applied.values() if v.get("arn") == addons[addon]["service_account_role_arn"])
        statement = json.loads(role["assume_role_policy"])["Statement"][0]
        assert statement["Principal"]["Federated"] == provider
        assert statement["Condition"]["StringEquals"] == {f"{issuer}:sub": f"system:serviceaccount:{account}",
                                                          f"{issuer}:aud": "sts.amazonaws.com"}
    attached = {(v["role"], v["policy_arn"].split("/")[-1]) for a, v in applied.items() if a.startswith("aws_iam_role_policy_attachment.irsa")}
    assert ("counter-api-ebs-csi", "AmazonEBSCSIDriverPolicy") in attached and ("counter-api-vpc-cni", "AmazonEKS_CNI_Policy") in attached


def test_volumes_have_a_default_gp3_class_in_the_pods_zone(lifecycle):
    outputs = lifecycle["state"]["values"]["outputs"]
    storage_class = yaml.safe_load((ROOT / "k8s" / "platform" / "storage" / "storageclass.yaml").read_text())
    assert storage_class["metadata"]["name"] == outputs["STORAGE_CLASS"]["value"] == "gp3"
    assert storage_class["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert storage_class["provisioner"] == "ebs.csi.aws.com" and storage_class["volumeBindingMode"] == "WaitForFirstConsumer"
    assert storage_class["parameters"]["type"] == "gp3" and storage_class["parameters"]["encrypted"] == "true"
    profile = yaml.safe_load((ROOT / "k8s" / "chart" / "values-aws.yaml").read_text())
    assert profile["redis"]["standalone"]["storageClassName"] == "gp3"
    apps = list(yaml.safe_load_all((ROOT / "k8s" / "argocd" / "platform.yaml").read_text()))
    assert any(a.get("spec", {}).get("source", {}).get("path") == "k8s/platform/storage" for a in apps)


def test_one_node_group_per_zone_and_an_autoscaler_for_them(lifecycle):
    applied = resources(lifecycle["state"], "values")
    subnets = {v["id"]: v["availability_zone"] for a, v in applied.items() if a.startswith("aws_subnet.private")}
    groups = [v for a, v in applied.items() if a.startswith("aws_eks_node_group.")]
    assert sorted(subnets[g["subnet_ids"][0]] for g in groups) == ZONES
    assert all(len(g["subnet_ids"]) == 1 and g["scaling_config"][0]["min_size"] >= 1
               and g["scaling_config"][0]["max_size"] > g["scaling_config"][0]["min_size"] for g in groups)
    autoscaler = json.loads(applied['aws_iam_role_policy.irsa["cluster-autoscaler"]']["policy"])
    resize = next(s for s in autoscaler["Statement"] if "autoscaling:SetDesiredCapacity" in listed(s["Action"]))
    assert resize["Condition"] == {"StringEquals": {"aws:ResourceTag/k8s.io/cluster-autoscaler/counter-api": "owned"}}
    apps = {a["metadata"]["name"]: a for a in yaml.safe_load_all((ROOT / "k8s" / "argocd" / "platform.yaml").read_text())}
    assert {"aws-load-balancer-controller", "cluster-autoscaler", "storage"} <= set(apps)
    # metrics-server for the HPA is one of the add-ons (test_add_ons_are_managed_with_their_own_roles).


def test_the_api_allowlist_and_no_in_cluster_provider(lifecycle):
    plan = lifecycle["plan_json"]
    assert set(plan["configuration"]["provider_config"]) == {"aws"}, "no helm or kubernetes provider: Argo CD installs"
    assert not [rc for rc in plan["resource_changes"] if rc["type"].startswith(("helm_", "kubernetes_"))]
    cluster = resources(lifecycle["state"], "values")["aws_eks_cluster.this"]["vpc_config"][0]
    assert cluster["endpoint_private_access"] and cluster["endpoint_public_access"]
    assert cluster["public_access_cidrs"] == [OPERATOR_CIDR]
    ci = yaml.safe_load((WORKFLOWS / "ci.yml").read_text())["jobs"]
    # GitOps is the default: the job that needs the cluster's API runs only when asked for.
    assert ci["deploy"]["if"] == "github.event_name == 'push' && vars.DEPLOY_MODE == 'push'"
    assert ci["gitops"]["if"] == "github.event_name == 'push' && vars.DEPLOY_MODE != 'push'"


def test_first_apply_ordering(lifecycle):
    edges = defaultdict(set)
    for source, target in re.findall(r'"\[root\] ([^"]+?)(?: \(expand\))?" -> "\[root\] ([^"]+?)(?: \(expand\))?"', lifecycle["graph"]):
        edges[source].add(target)

    def depends(node, on):
        seen, todo = set(), [node]
        while todo:
            current = todo.pop()
            if current == on:
                return True
            if current not in seen:
                seen.add(current)
                todo.extend(edges[current])
        return False
    assert edges, lifecycle["graph"][:500]
    assert depends("aws_iam_role.ci", "aws_iam_openid_connect_provider.github"), "GitHub roles before their provider"
    assert depends("aws_iam_role.irsa", "aws_iam_openid_connect_provider.cluster")
    assert depends("aws_eks_addon.this", "aws_eks_node_group.zone"), "add-ons wait for the nodes"
    assert depends("aws_eks_node_group.zone", "aws_route.private_nat"), "nodes need their way out to join"


def test_the_kubernetes_version_is_checked_for_standard_support(lifecycle):
    plan = lifecycle["plan_json"]
    default = plan["configuration"]["root_module"]["variables"]["kubernetes_version"]["default"]
    assert default == ".".join(K8S_VERSION.split(".")[:2]), "the chart is validated against the version infra/ pins"
    assert f"-k {K8S_VERSION}" in (WORKFLOWS / "ci.yml").read_text()
    checks = {c["address"]["to_display"] for c in plan.get("checks", [])}
    assert "check.kubernetes_version_in_standard_support" in checks
    assert resources(lifecycle["state"], "values")["aws_eks_cluster.this"]["version"] == default


def test_the_pull_request_plan_uses_the_applied_settings():
    workflow = (WORKFLOWS / "infra.yml").read_text()
    assert "-var-file=env/production.tfvars" in workflow and "-lock=false" in workflow and "TF_VAR_" not in workflow
    assert 'tfvars="${TFVARS:-$root/infra/env/production.tfvars}"' in (ROOT / "scripts" / "setup-aws.sh").read_text()
    script = ("import hcl2, json, sys\nprint(json.dumps([hcl2.load(open(sys.argv[1])), hcl2.loads(open(sys.argv[2]).read())]))")
    out = subprocess.run([str(ROOT / ".tools" / "venv" / "bin" / "python"), "-c", script, str(INFRA / "variables.tf"),
                          str(INFRA / "env" / "production.tfvars")], capture_output=True, text=True, timeout=60)
    variables, settings = json.loads(out.stdout)
    required = {name for block in variables["variable"] for name, body in block.items() if "default" not in body}
    assert required and required <= set(settings), required - set(settings)


# --- outputs read by the workflows, the chart and Argo CD ---------------------------------------------

def test_every_value_read_elsewhere_is_an_output(lifecycle):
    outputs = {k: v["value"] for k, v in lifecycle["state"]["values"]["outputs"].items()}
    workflows = "".join(p.read_text() for p in WORKFLOWS.glob("*.yml"))
    used = set(re.findall(r"vars\.([A-Z_]+)", workflows)) - {"DEPLOY_MODE"}
    assert used and used <= set(outputs), used - set(outputs)
    cidrs = json.loads(outputs["PUBLIC_SUBNET_CIDRS"])
    for values in ("values-aws.yaml", "env/production.yaml"):
        chart = yaml.safe_load((ROOT / "k8s" / "chart" / values).read_text())
        assert chart["nginx"]["realIpFrom"].split() == cidrs, values
        assert chart["networkPolicy"]["ingressCIDRs"] == cidrs, values
    # `outputs` wrote Argo CD's platform values from the real outputs, no placeholder left.
    out = ok(lifecycle["outputs"])
    assert f"IMAGES_ROLE_ARN={outputs['IMAGES_ROLE_ARN']}" in out.stdout and "DEPLOY_ROLE_ARN=" not in out.stdout
    written = lifecycle["emu"].root / "k8s" / "platform" / "values"
    controller = yaml.safe_load((written / "aws-load-balancer-controller.yaml").read_text())
    assert controller["vpcId"] == outputs["VPC_ID"] and controller["clusterName"] == outputs["EKS_CLUSTER"]
    assert controller["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"] == outputs["LOAD_BALANCER_CONTROLLER_ROLE_ARN"]
    autoscaler = yaml.safe_load((written / "cluster-autoscaler.yaml").read_text())
    assert autoscaler["rbac"]["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"] == outputs["CLUSTER_AUTOSCALER_ROLE_ARN"]
    for application in yaml.safe_load_all((ROOT / "k8s" / "argocd" / "platform.yaml").read_text()):
        for source in application["spec"].get("sources", []):
            for values_file in source.get("helm", {}).get("valueFiles", []):
                assert (ROOT / values_file.removeprefix("$values/")).exists(), values_file


def test_checkov_finds_nothing_and_every_skip_is_justified():
    failed, passed = checkov("terraform", "-d", INFRA)
    assert failed == [] and passed > 30, failed
    for path in INFRA.glob("*.tf"):
        for skip in re.findall(r"checkov:skip=.*", path.read_text()):
            assert re.fullmatch(r"checkov:skip=CKV[0-9]*_[A-Z0-9_]+: \S.{20,}", skip), f"{path.name}: {skip}"


def test_no_registry_module_and_one_pinned_provider():
    text = "".join(p.read_text() for p in INFRA.glob("*.tf"))
    assert not re.search(r'^\s*module\s+"', text, re.M), "registry modules cannot be installed or applied here"
    versions = (INFRA / "versions.tf").read_text()
    block = versions[versions.index("required_providers"):versions.index('backend "s3"')]
    assert re.findall(r'^\s*(\w+)\s*=\s*\{\s*$', block, re.M) == ["aws"]
    assert re.search(r'source\s*=\s*"hashicorp/aws"\s*\n\s*version\s*=\s*"5\.100\.0"', block)


def test_setup_aws_says_what_is_missing_clearly(tmp_path):
    def run(*args, env=None):
        base = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "CHECKPOINT_DISABLE": "1"}
        return subprocess.run(["/bin/bash", str(ROOT / "scripts" / "setup-aws.sh"), *args], env={**base, **(env or {})},
                              capture_output=True, text=True, timeout=60)
    help_text = run("--help")
    assert help_text.returncode == 0
    for command in ("check", "bootstrap", "plan", "apply", "argocd", "kubeconfig", "outputs", "fix", "destroy"):
        assert f"setup-aws.sh {command}" in help_text.stdout, command
    assert run("bogus").returncode == 2
    no_tools = run("check")
    assert no_tools.returncode == 1 and "missing: terraform" in no_tools.stderr and "missing: aws" in no_tools.stderr
    no_plan = run("apply")
    assert no_plan.returncode == 1 and "run scripts/setup-aws.sh plan first" in no_plan.stderr
    terraform = shutil.which("terraform")
    aws = ROOT / ".tools" / "aws" / "bin"
    with_tools = {"PATH": f"{aws}:{shutil.os.path.dirname(terraform)}:/usr/bin:/bin", "OPERATOR_CIDR": OPERATOR_CIDR}
    no_credentials = run("check", env=with_tools)
    assert no_credentials.returncode == 1 and "no AWS credentials" in no_credentials.stderr, no_credentials.stderr


def test_the_trust_evaluation_refuses_what_it_must():
    """The evaluator the OIDC tests rely on: a role that trusts only the production environment (one
    role for push and deploy) refuses the images job's token on main, and any other audience."""
    provider = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
    trust = {"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity", "Principal": {"Federated": provider},
                            "Condition": {"StringEquals": {
                                "token.actions.githubusercontent.com:sub": f"repo:{REPOSITORY}:environment:production",
                                "token.actions.githubusercontent.com:aud": "sts.amazonaws.com"}}}]}
    assert accepts(trust, provider, {"sub": f"repo:{REPOSITORY}:environment:production", "aud": "sts.amazonaws.com"})
    assert not accepts(trust, provider, {"sub": f"repo:{REPOSITORY}:ref:refs/heads/main", "aud": "sts.amazonaws.com"})
    assert not accepts(trust, provider, {"sub": f"repo:{REPOSITORY}:environment:production", "aud": "sigstore"})
    unchecked = {"Statement": [{**trust["Statement"][0], "Condition": {"StringLike": {
        "token.actions.githubusercontent.com:sub": f"repo:{REPOSITORY}:*"}}}]}
    assert not accepts(unchecked, provider, {"sub": f"repo:{REPOSITORY}:pull_request", "aud": "sts.amazonaws.com"})
    images = [job for job in oidc_jobs("gitops") if job[0] == "ci.yml/images"]
    assert images == [("ci.yml/images", "IMAGES_ROLE_ARN", f"repo:{REPOSITORY}:ref:refs/heads/main")]


def test_argo_cd_platform_applications_are_pinned_and_scoped():
    documents = list(yaml.safe_load_all((ROOT / "k8s" / "argocd" / "platform.yaml").read_text()))
    project = next(d for d in documents if d["kind"] == "AppProject")
    applications = [d for d in documents if d["kind"] == "Application"]
    counter_api = yaml.safe_load((ROOT / "k8s" / "argocd" / "application.yaml").read_text())
    ours = counter_api["spec"]["source"]["repoURL"]
    assert project["metadata"]["name"] == "platform"
    # The controllers in kube-system; the service's namespace only for push mode's access (push-mode.yaml).
    assert [d["namespace"] for d in project["spec"]["destinations"]] == ["kube-system", "counter-api"]
    push_mode = yaml.safe_load((ROOT / "k8s" / "argocd" / "push-mode.yaml").read_text())
    assert push_mode["spec"]["project"] == "platform" and push_mode["spec"]["source"]["path"] == "k8s/platform/deploy-access"
    for application in applications:
        spec = application["spec"]
        assert spec["project"] == "platform" and spec["destination"]["namespace"] == "kube-system"
        assert "resources-finalizer.argocd.argoproj.io" in application["metadata"].get("finalizers", []) \
            or application["metadata"]["name"] == "storage", "controllers are removed with their application"
        for source in spec.get("sources", [spec.get("source")]):
            assert source["repoURL"] in project["spec"]["sourceRepos"], source["repoURL"]
            if "chart" in source:
                assert re.fullmatch(r"\d+\.\d+\.\d+", source["targetRevision"]), source
            else:
                assert source["repoURL"] == ours and source["targetRevision"] == counter_api["spec"]["source"]["targetRevision"]
    # The load balancer controller's webhook and the storage class come before counter-api's sync.
    waves = {a["metadata"]["name"]: int(a["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-wave", "0"))
             for a in applications}
    assert waves["aws-load-balancer-controller"] < 0 and waves["storage"] < 0
    # The committed values are placeholders the bootstrap refuses until `setup-aws.sh outputs` ran.
    for values in (ROOT / "k8s" / "platform" / "values").glob("*.yaml"):
        assert "REPLACE" in values.read_text(), values.name
    script = (ROOT / "scripts" / "setup-aws.sh").read_text()
    assert "grep -rqs 'REPLACE' \"$root/k8s/platform/values\"" in script


def test_the_storage_class_is_a_valid_kubernetes_object():
    out = subprocess.run([str(ROOT / ".tools" / "venv" / "bin" / "kubernetes-validate"), "--strict", "--quiet", "-k", K8S_VERSION,
                          str(ROOT / "k8s" / "platform" / "storage" / "storageclass.yaml")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
