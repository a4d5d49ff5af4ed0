"""Turns the rendered kustomize output into one pod spec for `podman kube play`, for the tests.

podman has no cluster: it runs the Deployment's pod template as one pod. The test adds what a
cluster would provide: the Secrets (test values), one replica, the nginx port published on
127.0.0.1 (hostPort), and a Redis container beside the app in the same pod (REDIS_HOST 127.0.0.1,
so no traffic leaves the pod but the published port on loopback). Debian 12's podman 4.3 crashes
on secret volumes (podman's issue #16636), so the test Secrets are given as ConfigMaps of the same
name and content, mounted at the same paths.
"""
import sys

import yaml


def build(rendered: str, port: int, password: str, keys: str, redis_image: str) -> str:
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "counter-api")
    # The ConfigMaps the pod mounts (none of the app's today: nginx's templates come with its image).
    mounted = {v["configMap"]["name"] for v in deployment["spec"]["template"]["spec"]["volumes"] if "configMap" in v}
    config_maps = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] in mounted]
    deployment["spec"]["replicas"] = 1
    pod = deployment["spec"]["template"]["spec"]
    for container in pod["containers"]:
        if container["name"] == "nginx":
            container["ports"][0].update({"hostPort": port, "hostIP": "127.0.0.1"})
        if container["name"] == "counter-fcgi":
            for env in container["env"]:
                if env["name"] == "REDIS_HOST":
                    env["value"] = "127.0.0.1"
    pod["containers"].append({
        "name": "redis",
        "image": redis_image,
        # The image's own user owns /data; the pod's default user (10001) does not.
        "securityContext": {"runAsUser": 999, "runAsGroup": 999},
        "command": ["redis-server", "--user", "counter", "on", f">{password}", "resetkeys", "~api_counter",
                    "~{api_counter}:idempotency:*", "~{c:*", "resetchannels", "-@all", "+get", "+incr", "+set", "+ping",
                    "+evalsha", "+script|load", "+incrby", "+decrby", "+del", "+scan", "+mget", "--appendonly", "yes",
                    "--appendfsync", "always", "--maxmemory-policy", "noeviction", "--protected-mode", "no"],
    })
    volumes = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    for volume in pod["volumes"]:
        if "secret" in volume:
            volume["configMap"] = {"name": volume.pop("secret")["secretName"]}

    def secret(name, data):
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
    out = [secret(volumes["redis-password"], {"password": password}), secret(volumes["api-keys"], {"api_keys": keys})]
    out += config_maps + [deployment]
    return yaml.safe_dump_all(out, sort_keys=False)


if __name__ == "__main__":
    print(build(sys.stdin.read(), int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]))
