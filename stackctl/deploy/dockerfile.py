"""Read docker/Dockerfile as data: its stages and, per stage, ENV, USER, CMD, ENTRYPOINT, HEALTHCHECK.

The tests use it to hold the image to the native setup: the container's command line and health
check are run natively (tests/integration/test_container_command.py), and the static checks compare
them with the contract, compose and k8s (tests/deploy/). Only the Dockerfile syntax this project
uses is supported: `\\` line continuations, `#` comment lines, `key=value` ENV, JSON exec form.

    python -m stackctl.deploy.dockerfile [docker/Dockerfile]   # prints each stage's runtime settings
"""
from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from stackctl import paths

DOCKERFILE = paths.ROOT / "docker" / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    keyword: str          # upper case: FROM, RUN, ENV, ...
    arguments: str        # the rest of the instruction, continuations joined
    line: int             # 1-based line of the keyword


@dataclass
class Stage:
    name: str | None
    base: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def env(self) -> dict[str, str]:
        """The stage's own ENV settings (not those inherited from its base), in order."""
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for word in shlex.split(instruction.arguments):
                key, sep, value = word.partition("=")
                if not sep:
                    raise ValueError(f"line {instruction.line}: only `ENV key=value` is supported")
                values[key] = value
        return values

    def exec_form(self, keyword: str) -> list[str] | None:
        """CMD or ENTRYPOINT as its JSON argument list; None when absent."""
        instruction = self.last(keyword)
        return None if instruction is None else parse_exec_form(instruction)

    def healthcheck(self) -> tuple[dict[str, str], list[str]] | None:
        """(options such as {'interval': '15s'}, the CMD's exec-form argument list)."""
        instruction = self.last("HEALTHCHECK")
        if instruction is None:
            return None
        options: dict[str, str] = {}
        rest = instruction.arguments
        while rest.startswith("--"):
            option, _, rest = rest.partition(" ")
            key, _, value = option[2:].partition("=")
            options[key] = value
            rest = rest.lstrip()
        keyword, _, command = rest.partition(" ")
        if keyword.upper() != "CMD":
            raise ValueError(f"line {instruction.line}: expected HEALTHCHECK ... CMD [...]")
        return options, parse_exec_form(Instruction("CMD", command.strip(), instruction.line))


def parse_exec_form(instruction: Instruction) -> list[str]:
    try:
        value = json.loads(instruction.arguments)
    except json.JSONDecodeError as exc:
        raise ValueError(f"line {instruction.line}: {instruction.keyword} is not in exec (JSON) form") from exc
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise ValueError(f"line {instruction.line}: {instruction.keyword} must be a JSON list of strings")
    return value


def instructions(text: str) -> list[Instruction]:
    found: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped, as Docker does
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        pending.append(line)
        joined = " ".join(part for part in pending if part)
        keyword, _, arguments = joined.partition(" ")
        found.append(Instruction(keyword.upper(), arguments.strip(), start))
        pending = []
    return found


def parse(path: Path = DOCKERFILE) -> list[Stage]:
    """Every stage in file order; instructions before the first FROM (global ARGs) are dropped."""
    stages: list[Stage] = []
    for instruction in instructions(Path(path).read_text()):
        if instruction.keyword == "FROM":
            words = instruction.arguments.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(name=name, base=words[0]))
        elif stages:
            stages[-1].instructions.append(instruction)
    return stages


def stage(name: str, path: Path = DOCKERFILE) -> Stage:
    for candidate in parse(path):
        if candidate.name == name:
            return candidate
    raise KeyError(f"{path}: no stage named {name!r}")


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else DOCKERFILE
    for s in parse(path):
        print(f"{s.name or '-'}  FROM {s.base}")
        for keyword in ("ENTRYPOINT", "CMD"):
            if s.last(keyword):
                print(f"  {keyword}: {s.exec_form(keyword)}")
        check = s.healthcheck()
        if check:
            print(f"  HEALTHCHECK {check[0]}: {check[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
