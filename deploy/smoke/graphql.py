"""The webserver's GraphQL API, as deploy/smoke.sh uses it (run inside the webserver's container).

  automation              every schedule and sensor with its status; exit 1 unless all are RUNNING
  launch JOB START END    queue a run of JOB over the partition range START...END (the schedule's tags)
  wait RUN_ID SECONDS     the run's status once it has finished; exit 1 unless SUCCESS
  status RUN_ID           the run's status (exit 1 if the run is not in the run history)
Standard library only; the UI listens on localhost:3000 in the webserver's network (docker-compose.yml).
"""

import json
import sys
import time
import urllib.request

URL = "http://localhost:3000/graphql"
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"

REPOSITORIES = """{ repositoriesOrError { __typename ... on RepositoryConnection { nodes { name
  location { name } schedules { name scheduleState { status } } sensors { name sensorState { status } } } }
  ... on PythonError { message } } }"""
LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
  ... on LaunchRunSuccess { run { runId status } } ... on Error { message }
  ... on RunConfigValidationInvalid { errors { message } } } }"""
RUN = """query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { runId status tags { key value } }
  ... on Error { message } } }"""
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


def query(text: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": text, "variables": variables or {}}).encode()
    request = urllib.request.Request(URL, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.load(response)
    if answer.get("errors"):
        raise SystemExit(f"GraphQL errors: {answer['errors']}")
    return answer["data"]


def repositories() -> list[dict]:
    answer = query(REPOSITORIES)["repositoriesOrError"]
    if answer["__typename"] != "RepositoryConnection":
        raise SystemExit(f"repositories: {answer}")
    return answer["nodes"]


def automation() -> int:
    states = {}
    for repository in repositories():
        for schedule in repository["schedules"]:
            states[f"schedule {schedule['name']}"] = schedule["scheduleState"]["status"]
        for sensor in repository["sensors"]:
            states[f"sensor {sensor['name']}"] = sensor["sensorState"]["status"]
    print(", ".join(f"{name}={status}" for name, status in sorted(states.items())))
    kinds = {name.split()[0] for name in states}
    return 0 if kinds == {"schedule", "sensor"} and set(states.values()) == {"RUNNING"} else 1


def launch(job: str, start: str, end: str) -> int:
    [repository] = repositories()
    params = {
        "selector": {"repositoryLocationName": repository["location"]["name"],
                     "repositoryName": repository["name"], "jobName": job},
        "runConfigData": {},
        "executionMetadata": {"tags": [{"key": RANGE_START, "value": start}, {"key": RANGE_END, "value": end},
                                       {"key": "qtickets/trigger", "value": "smoke"}]},
    }
    answer = query(LAUNCH, {"params": params})["launchRun"]
    if answer["__typename"] != "LaunchRunSuccess":
        raise SystemExit(f"launchRun: {answer}")
    print(answer["run"]["runId"], answer["run"]["status"])
    return 0


def run_status(run_id: str) -> str | None:
    answer = query(RUN, {"id": run_id})["runOrError"]
    return answer["status"] if answer["__typename"] == "Run" else None


def wait(run_id: str, seconds: str) -> int:
    deadline = time.monotonic() + float(seconds)
    seen = []
    while True:
        status = run_status(run_id)
        if not seen or seen[-1] != status:
            seen.append(status)
        if status in FINISHED or time.monotonic() > deadline:
            break
        time.sleep(2)
    print(" -> ".join(str(status) for status in seen))
    return 0 if status == "SUCCESS" else 1


def status(run_id: str) -> int:
    found = run_status(run_id)
    print(found)
    return 0 if found else 1


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    sys.exit({"automation": automation, "launch": launch, "wait": wait, "status": status}[command](*args))
