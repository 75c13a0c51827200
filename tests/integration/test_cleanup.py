"""cleanup against the real Docker Engine of the Compose lab, on containers and images made here only.

The lab is shared: the containers made here belong to a project of their own (a Compose project label and a
temporary project directory), their images to a repository of their own, so scope=project never reaches the
lab's objects, and scope=all runs only in check mode.
"""

from __future__ import annotations

import io
import uuid

import pytest

from tests.helpers.ansible import four_steps, run_playbook

pytestmark = pytest.mark.integration

TEST_LABEL = "ops-runbooks.test"


@pytest.fixture(scope="module")
def objects(compose_lab, compose_platform, tmp_path_factory):
    """Four distinct images v1..v4 (built in that order, v1 also tagged v1-alias) and three containers:
    an exited one of the test project (v1), a running one of the test project (v2), an exited one outside
    any project (v4)."""
    import docker

    from lab import compose
    from lab import docker as labdocker

    client = docker.DockerClient(base_url=compose_platform["platform_settings"]["docker_host"])
    run_id = uuid.uuid4().hex[:8]
    project, repo = f"ops-runbooks-cleanup-{run_id}", f"ops-runbooks-test/cleanup-{run_id}"
    base = labdocker.base_image(compose.BASE_PACKAGES)
    labels = {TEST_LABEL: run_id}
    try:
        images = {}
        for n in range(1, 5):
            dockerfile = f"FROM {base}\nLABEL {TEST_LABEL}={run_id} version=v{n}\n".encode()
            images[f"v{n}"], _log = client.images.build(fileobj=io.BytesIO(dockerfile), tag=f"{repo}:v{n}", rm=True)
        images["v1"].tag(repo, "v1-alias")
        in_project = dict(labels, **{"com.docker.compose.project": project, "com.docker.compose.service": "job"})
        exited = client.containers.run(f"{repo}:v1", ["true"], name=f"{project}-job-1", labels=in_project,
                                       detach=True)
        running = client.containers.run(f"{repo}:v2", ["sleep", "600"], name=f"{project}-worker-1",
                                        labels=in_project, detach=True)
        outsider = client.containers.run(f"{repo}:v4", ["true"], name=f"ops-runbooks-outsider-{run_id}",
                                         labels=labels, detach=True)
        exited.wait(timeout=60)
        outsider.wait(timeout=60)
        settings = {"docker_host": compose_platform["platform_settings"]["docker_host"], "project_name": project,
                    "project_dir": str(tmp_path_factory.mktemp("cleanup-project"))}
        yield {"client": client, "repo": repo, "images": {k: v.id for k, v in images.items()},
               "exited": exited.name, "running": running.name, "outsider": outsider.name,
               "args": {"platform": "compose", "platform_settings": settings}}
    finally:
        for container in client.containers.list(all=True, filters={"label": f"{TEST_LABEL}={run_id}"}):
            container.remove(force=True)
        for image in client.images.list(name=repo):
            client.images.remove(image.id, force=True)
        client.close()


def _containers(objects):
    run_id = objects["repo"].rsplit("-", 1)[1]
    found = objects["client"].containers.list(all=True, filters={"label": f"{TEST_LABEL}={run_id}"})
    return {c.name: c.status for c in found}


def _images(objects):
    return {i.id: sorted(i.tags) for i in objects["client"].images.list(name=objects["repo"])}


def test_bad_input_and_scope_all_change_nothing(objects):
    args = objects["args"]
    containers, images = _containers(objects), _images(objects)
    bad = [
        (dict(args, keep_images=-1), "keep_images"),
        (dict(args, keep_images="many"), "keep_images"),
        (dict(args, scope="everything"), "scope"),
        (dict(args, platform="kubernetes"), "platform"),
        (dict(args, platform_settings={"project_name": "x"}), "platform_settings.project_dir"),
        (dict(args, platform_settings=dict(args["platform_settings"], project_dir="/nonexistent")),
         "platform_settings.project_dir"),
        (dict(args, verify=[{"type": "command", "argv": ["docker ps"]}]), "verify[0].argv"),
        (dict(args, verify=[{"type": "command", "argv": ["true"], "timeout": "later"}]), "verify[0].timeout"),
        (dict(args, verify_timeout="x; rm -rf /"), "verify_timeout"),
    ]
    run = run_playbook([{"ops.runbooks.cleanup": a} for a, _ in bad]
                       + [{"ops.runbooks.cleanup": dict(args, scope="all", keep_images=2), "check_mode": True}])
    for (a, needle), res in zip(bad, run.results, strict=False):
        assert res.failed, (a, res)
        assert needle in res["msg"], (needle, res["msg"])
    everything = run.results[-1]
    assert not everything.failed, everything
    # Host-wide, the exited container outside any project is a candidate; no image any container uses ever is.
    assert objects["outsider"] in {c["name"] for c in everything["would_remove"]["containers"]}
    used = {c.attrs["Image"] for c in objects["client"].containers.list(all=True)
            if c.name not in {x["name"] for x in everything["containers"]}}
    assert everything["images"] and not used & {i["id"] for i in everything["images"]}
    assert objects["images"]["v2"] not in {i["id"] for i in everything["images"]}
    assert everything["removed"] == {"containers": [], "images": []}
    assert _containers(objects) == containers and _images(objects) == images


def test_four_steps_remove_exited_containers_and_old_images(objects):
    ids = objects["images"]
    verify = [{"type": "command", "argv": ["docker", "container", "inspect", objects["running"]],
               "stdout_regex": '"Running": true'}]
    check1, apply1, check2, apply2 = four_steps("cleanup", dict(objects["args"], keep_images=2, verify=verify))

    # v1 is older than the newest two (v3, v4) and only the exited container of the project uses it; v2 is as
    # old but a running container uses it. The outsider is in no project.
    assert not check1.failed, check1
    assert check1.changed and [c["name"] for c in check1["would_remove"]["containers"]] == [objects["exited"]]
    assert check1["would_remove"]["images"] == [
        {"id": ids["v1"], "repository": objects["repo"], "created": check1["images"][0]["created"],
         "tags": [f"{objects['repo']}:v1", f"{objects['repo']}:v1-alias"]}]
    assert check1["removed"] == {"containers": [], "images": []}
    assert check1["diff"]["after"] == {"containers": [], "images": []}

    assert apply1.changed and apply1["removed"] == check1["would_remove"], apply1
    assert apply1["verification"]["healthy"], apply1
    assert _containers(objects) == {objects["running"]: "running", objects["outsider"]: "exited"}
    assert set(_images(objects)) == {ids["v2"], ids["v3"], ids["v4"]}

    assert not check2.changed and check2["would_remove"] == {"containers": [], "images": []}
    assert not apply2.changed and apply2["removed"] == {"containers": [], "images": []}
    assert "verification" not in apply2
