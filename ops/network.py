"""Real links to break: each part of the stack in a network namespace of its own.

`Network` puts the Temporal server, the services, the workers, the Order API and the starter
each in a network namespace, joined by a veth pair per `Link` (a worker reaches Temporal over
one link and the services over another). The kernel's own tools break them: `tc netem` for
latency, jitter, loss and reordering, nftables for partitions (one way or both), and
`ip link set down` for a link gone. Each fault lives in the namespace of an end of its link.

The process that made the network (the control side, in the root namespace) reaches the
server, the services and the API over control links that are never broken: it watches the
run, and audits it, whatever the links the parts talk over are doing.

Every namespace's name holds the pid of the process that made it. A reaper process, in a
session of its own, waits for that process to end, however it ends (a SIGKILL too), and then
removes its namespaces and ends the processes still in them; removing a namespace removes its
links, its qdiscs and its nftables rules with it. Namespaces of processes long gone (left by a
machine's crash) are removed by the next network made.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import re
import select
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from temporalio.runtime import Runtime, TelemetryConfig

from infra.exits import StartFailure
from infra.runtime import FORWARDED_LOGS


class Part(StrEnum):
    """A part of the stack, each in a namespace of its own."""

    TEMPORAL = "temporal"
    SERVICES = "services"
    WORKER = "worker"
    API = "api"
    STARTER = "starter"


class Link(StrEnum):
    """A link between two parts: the first end calls, the second answers."""

    WORKER_TEMPORAL = "worker-temporal"
    WORKER_SERVICES = "worker-services"
    API_TEMPORAL = "api-temporal"
    STARTER_TEMPORAL = "starter-temporal"

    @property
    def caller(self) -> Part:
        """The end that opens connections."""
        return Part(self.value.partition("-")[0])

    @property
    def answerer(self) -> Part:
        """The end that listens."""
        return Part(self.value.partition("-")[2])


#: The parts the control side reaches over links of their own, which no fault touches.
CONTROLLED = (Part.TEMPORAL, Part.SERVICES, Part.API)


class Direction(StrEnum):
    """Which way a partition stops the traffic of a link."""

    BOTH = "both ways"
    REQUESTS = "requests lost"  # from the caller to the answerer
    ANSWERS = "answers lost"  # from the answerer to the caller: the effect happens, unseen


@dataclass(frozen=True)
class Traffic:
    """Packets that crossed a link, by direction, and packets its partitions dropped.

    Attributes:
        requests: IP packets the answerer's end received from the caller.
        answers: IP packets the caller's end received from the answerer.
        dropped: Packets a partition dropped, both ways.
    """

    requests: int
    answers: int
    dropped: int


#: The prefix of every namespace a network makes: `order-saga-<pid>-<part>`.
PREFIX = "order-saga-"

#: The private /16 the links' /30 subnets come from; a network takes a free /24 of it.
SUBNET = "10.213"

_CLONE_NEWNET = 0x40000000


def require_tools() -> None:
    """Check that this machine can make a network: the tools, and the right to use them.

    Raises:
        StartFailure: In one line, what is missing and what to do.
    """
    missing = [tool for tool in ("ip", "tc", "nft") if shutil.which(tool) is None]
    if missing:
        raise StartFailure(
            f"network chaos needs {', '.join(missing)}: install Debian's iproute2 and nftables "
            f"(apt-get install iproute2 nftables)"
        )
    probe = f"{PREFIX}{os.getpid()}-probe"
    made = subprocess.run(("ip", "netns", "add", probe), capture_output=True, text=True)
    if made.returncode != 0:
        reason = made.stderr.strip().splitlines()[-1] if made.stderr.strip() else "refused"
        raise StartFailure(
            f"network chaos cannot make a network namespace ({reason}): it needs "
            f"CAP_NET_ADMIN, as root or in a container started with --cap-add NET_ADMIN"
        )
    subprocess.run(("ip", "netns", "del", probe), capture_output=True)


class Network:
    """The namespaces and links of one run; made by `made()`, which removes them at the end.

    Attributes:
        owner: The pid of the process that made it (its namespaces die with that process).
        subnet: The /24 its links' addresses come from, such as `10.213.7`.
    """

    def __init__(self, owner: int, subnet: str) -> None:
        self.owner, self.subnet = owner, subnet

    @classmethod
    @contextlib.contextmanager
    def made(cls) -> Iterator[Network]:
        """Make the namespaces and links of a run; remove them, and what runs in them, at the end.

        Raises:
            StartFailure: The machine does not allow it, in one line.
        """
        require_tools()
        remove_abandoned()
        network = cls(os.getpid(), _free_subnet())
        _start_reaper(network.owner)
        try:
            network._make()
            yield network
        finally:
            remove_namespaces_of(network.owner)

    def namespace(self, part: Part) -> str:
        """The name of `part`'s namespace."""
        return f"{PREFIX}{self.owner}-{part}"

    def launcher(self, part: Part) -> tuple[str, ...]:
        """The command prefix that runs a program in `part`'s namespace."""
        return ("ip", "netns", "exec", self.namespace(part))

    def address(self, link: Link) -> str:
        """The address at which `link`'s caller reaches its answerer."""
        return self._ends(list(Link).index(link))[1]

    def control_address(self, part: Part) -> str:
        """The address at which the control side reaches `part` (never broken)."""
        return self._ends(len(Link) + CONTROLLED.index(part))[1]

    def runtime(self, part: Part) -> Runtime:
        """A Temporal runtime whose connections are made from `part`'s namespace.

        A runtime's threads connect for its clients; threads are started in the namespace of
        the thread that starts them, so a thread that has entered `part`'s namespace makes
        the runtime, and ends.
        """
        made: list[Runtime] = []

        def make() -> None:
            libc = ctypes.CDLL(None, use_errno=True)
            descriptor = os.open(f"/run/netns/{self.namespace(part)}", os.O_RDONLY)
            try:
                if libc.setns(descriptor, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {self.namespace(part)}")
            finally:
                os.close(descriptor)
            made.append(Runtime(telemetry=TelemetryConfig(logging=FORWARDED_LOGS)))

        thread = threading.Thread(target=make, name=f"runtime-in-{part}")
        thread.start()
        thread.join()
        if not made:
            raise StartFailure(f"could not enter {self.namespace(part)}: see the log above")
        return made[0]

    def cut(self, link: Link, direction: Direction = Direction.BOTH) -> None:
        """Drop every packet of `link` going `direction` (nftables, at the sending end)."""
        senders = {
            Direction.BOTH: (link.caller, link.answerer),
            Direction.REQUESTS: (link.caller,),
            Direction.ANSWERS: (link.answerer,),
        }[direction]
        for part in senders:
            self._drop(part, _peer(link, part), "")

    def take_down(self, link: Link) -> None:
        """Set `link` down (`ip link set down`): neither end has a route to the other."""
        self._run("ip", "-n", self.namespace(link.caller), "link", "set", link.answerer, "down")

    def degrade(
        self, link: Link, *, loss: float = 0.0, latency_ms: int = 0, jitter_ms: int = 0
    ) -> None:
        """Lose a share of `link`'s packets both ways, and delay them (with jitter, reordered).

        Loss is an nftables rule; delay needs the kernel's netem (`netem_available`).

        Args:
            link: The link.
            loss: Share of packets lost, each way, 0 to 1.
            latency_ms: Added to each packet, each way.
            jitter_ms: Spread of that delay (normal distribution): packets overtake each other.

        Raises:
            StartFailure: A delay was asked for and this kernel has no netem.
        """
        if latency_ms and not netem_available():
            raise StartFailure(NO_NETEM)
        for part in (link.caller, link.answerer):
            peer = _peer(link, part)
            if loss:
                self._drop(part, peer, f"numgen random mod 1000 < {round(loss * 1000)}")
            if latency_ms:
                delay = ("delay", f"{latency_ms}ms", f"{jitter_ms}ms", "distribution", "normal")
                tc = ("tc", "-n", self.namespace(part), "qdisc", "replace", "dev", peer, "root")
                self._run(*tc, "netem", *delay)

    def heal(self, link: Link) -> None:
        """Undo every fault of `link`: it is up, with no partition, no delay and no loss."""
        self._run("ip", "-n", self.namespace(link.caller), "link", "set", link.answerer, "up")
        for part in (link.caller, link.answerer):
            peer, namespace = _peer(link, part), self.namespace(part)
            self._run("tc", "-n", namespace, "qdisc", "del", "dev", peer, "root", check=False)
            self._nft(part, "delete", "table", "inet", f"faults-{peer}", check=False)

    def _drop(self, part: Part, peer: Part, match: str) -> None:
        """Drop the packets `part` sends to `peer` that `match` (nftables; counted)."""
        self._add_rule(part, f"faults-{peer}", "output", f'oifname "{peer}" {match} counter drop')

    def _add_rule(self, part: Part, table: str, hook: str, rule: str) -> None:
        """Add `rule` to the chain on `hook` of `table` in `part`'s namespace (made if missing)."""
        script = (
            f"table inet {table} {{\n chain {hook} {{\n  type filter hook {hook} priority 0\n"
            " }\n}\n"
            f"add rule inet {table} {hook} {rule}\n"
        )
        self._nft(part, "-f", "-", stdin=script)

    def _nft(self, part: Part, *args: str, stdin: str | None = None, check: bool = True) -> str:
        return self._run(
            "ip", "netns", "exec", self.namespace(part), "nft", *args, stdin=stdin, check=check
        )

    def traffic(self, link: Link) -> Traffic:
        """What has crossed `link` so far, each way, and what its partitions have dropped."""
        requests = self._received(link.answerer, link.caller)
        answers = self._received(link.caller, link.answerer)
        dropped = sum(
            self._dropped(part, _peer(link, part)) for part in (link.caller, link.answerer)
        )
        return Traffic(requests, answers, dropped)

    def _received(self, part: Part, peer: Part) -> int:
        return self._counted(part, f"received-{peer}")

    def _dropped(self, part: Part, peer: Part) -> int:
        return self._counted(part, f"faults-{peer}")

    def _counted(self, part: Part, table: str) -> int:
        """The packets the counters of nftables table `table` in `part`'s namespace counted."""
        listed = self._nft(part, "-j", "list", "table", "inet", table, check=False)
        if not listed:
            return 0
        return sum(
            int(expression["counter"]["packets"])
            for item in json.loads(listed)["nftables"]
            for expression in item.get("rule", {}).get("expr", [])
            if "counter" in expression
        )

    def _ends(self, index: int) -> tuple[str, str]:
        """The caller's and the answerer's address on the `index`th link (a /30 each)."""
        return f"{self.subnet}.{4 * index + 1}", f"{self.subnet}.{4 * index + 2}"

    def _make(self) -> None:
        for part in Part:
            self._run("ip", "netns", "add", self.namespace(part))
            self._run("ip", "-n", self.namespace(part), "link", "set", "lo", "up")
        for index, link in enumerate(Link):
            self._pair(index, link.caller, link.answerer)
            for part in (link.caller, link.answerer):
                self._count_received(part, _peer(link, part))
        for index, part in enumerate(CONTROLLED, start=len(Link)):
            self._pair(index, None, part)

    def _count_received(self, part: Part, peer: Part) -> None:
        """Count the IP packets `part` receives from `peer` (ARP and the like left out)."""
        self._add_rule(part, f"received-{peer}", "input", f'iifname "{peer}" counter')

    def _pair(self, index: int, caller: Part | None, answerer: Part) -> None:
        """A veth pair from `caller`'s namespace (None: the control side's) to `answerer`'s."""
        near = str(answerer) if caller else f"os{self.owner}-{answerer[:3]}"
        far = str(caller) if caller else "control"
        near_ns = ("-n", self.namespace(caller)) if caller else ()
        far_ns = self.namespace(answerer)
        self._run(
            "ip",
            *near_ns,
            "link",
            "add",
            near,
            "type",
            "veth",
            "peer",
            "name",
            far,
            "netns",
            far_ns,
        )
        for namespace, device, address in (
            (near_ns, near, self._ends(index)[0]),
            (("-n", far_ns), far, self._ends(index)[1]),
        ):
            self._run("ip", *namespace, "addr", "add", f"{address}/30", "dev", device)
            self._run("ip", *namespace, "link", "set", device, "up")

    @staticmethod
    def _run(*command: str, stdin: str | None = None, check: bool = True) -> str:
        done = subprocess.run(command, input=stdin, capture_output=True, text=True)
        if check and done.returncode != 0:
            raise StartFailure(f"{' '.join(command)} failed: {done.stderr.strip()}")
        return done.stdout if done.returncode == 0 else ""


def _peer(link: Link, part: Part) -> Part:
    """The other end of `link` from `part` (the name of `part`'s device on it, too)."""
    return link.answerer if part is link.caller else link.caller


#: What a run says where the kernel cannot delay packets.
NO_NETEM = (
    "this kernel has no netem (sch_netem): latency and jitter cannot be made here; "
    "partitions and loss (nftables) can"
)


@functools.cache
def netem_available() -> bool:
    """Whether this kernel can delay packets (some build netem out, as some VMs' do)."""
    if shutil.which("ip") is None or shutil.which("tc") is None:
        return False
    probe = f"{PREFIX}{os.getpid()}-netem"
    subprocess.run(("ip", "netns", "add", probe), capture_output=True)
    try:
        added = subprocess.run(
            ("tc", "-n", probe, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"),
            capture_output=True,
        )
        return added.returncode == 0
    finally:
        subprocess.run(("ip", "netns", "del", probe), capture_output=True)


def _namespaces() -> list[str]:
    listed = subprocess.run(("ip", "-j", "netns", "list"), capture_output=True, text=True)
    return [entry["name"] for entry in json.loads(listed.stdout or "[]")]


def _owner_of(namespace: str) -> int | None:
    found = re.fullmatch(rf"{PREFIX}(\d+)-\w+", namespace)
    return int(found[1]) if found else None


def remove_namespaces_of(owner: int) -> None:
    """End every process in `owner`'s namespaces, then remove the namespaces."""
    for namespace in _namespaces():
        if _owner_of(namespace) != owner:
            continue
        pids = subprocess.run(("ip", "netns", "pids", namespace), capture_output=True, text=True)
        for pid in pids.stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), 9)
        subprocess.run(("ip", "netns", "del", namespace), capture_output=True)


def remove_abandoned() -> None:
    """Remove the namespaces of networks whose process no longer runs."""
    for owner in {_owner_of(namespace) for namespace in _namespaces()} - {None}:
        assert owner is not None
        if not os.path.exists(f"/proc/{owner}"):
            remove_namespaces_of(owner)


def _free_subnet() -> str:
    shown = subprocess.run(("ip", "-j", "addr", "show"), capture_output=True, text=True)
    taken = {
        address["local"].rsplit(".", 1)[0]
        for interface in json.loads(shown.stdout or "[]")
        for address in interface.get("addr_info", [])
    }
    for third in range(256):
        if f"{SUBNET}.{third}" not in taken:
            return f"{SUBNET}.{third}"
    raise StartFailure(f"no free /24 left in {SUBNET}.0.0/16: remove the networks left there")


def _start_reaper(owner: int) -> None:
    """Start a process that removes `owner`'s namespaces once `owner` has ended, however."""
    subprocess.Popen(
        (sys.executable, "-m", "ops.network", str(owner)),
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _reap(owner: int) -> None:
    """Wait for `owner` to end, then remove its namespaces."""
    with contextlib.suppress(ProcessLookupError):
        descriptor = os.pidfd_open(owner)
        select.select([descriptor], [], [])
    remove_namespaces_of(owner)


if __name__ == "__main__":
    _reap(int(sys.argv[1]))
