"""Apache Kafka 4.1.1 for the tests: a single-node KRaft broker on free loopback ports.

The broker's jars come from Maven Central, resolved once into a cache folder outside the
checkout (`KAFKA_TEST_CACHE`, default `~/.cache/face-service-tests`) and re-used by every
later run; nothing is committed. Each `ApacheKafka` formats a fresh log directory of its
own. The JVM is told to die with the process that started it (PR_SET_PDEATHSIG), so a
test run that is interrupted, or even killed -9, leaves no broker behind.

    python -m tests.support.apache_kafka check     # java and mvn there? (make test asks)
    python -m tests.support.apache_kafka resolve   # fetch the jars now (CI warms the cache)
    python -m tests.support.apache_kafka run       # a broker in the foreground, for a try
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.ports import free_port
from tests.support.reaper import dying_with_parent

KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"  # Kafka 4.1 logs through SLF4J 1.7: the log4j-slf4j-impl binding
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"  # Maven 3.8 picks 2.8
STARTED_LINE = "Kafka Server started"

_POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.face-service-tests</groupId>
  <artifactId>kafka-classpath</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{KAFKA_VERSION}</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId>
      <version>{KAFKA_VERSION}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{LOG4J_VERSION}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>{LOG4J_VERSION}</version></dependency>
  </dependencies>
</project>
"""

# The broker's own log goes to a file in its folder: stdout stays quiet, the file is there
# to read when a test fails.
_LOG4J = """status = error
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.test.log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
"""

MISSING_TOOLS = (
    "the tests run against Apache Kafka {version}, which needs {missing} on PATH "
    "(Java 17 or newer, and Maven 3.8+ to fetch the broker from Maven Central once). "
    "Install them (Debian: apt-get install openjdk-17-jre-headless maven), "
    "or run the suite on the embedded Tansu broker instead: TEST_KAFKA=tansu make test"
)


def missing_tools() -> list[str]:
    return [tool for tool in ("java", "mvn") if shutil.which(tool) is None]


def cache_dir() -> Path:
    root = os.environ.get("KAFKA_TEST_CACHE") or str(Path.home() / ".cache" / "face-service-tests")
    return Path(root) / f"kafka-{KAFKA_VERSION}"


def classpath() -> Path:
    """The folder of the broker's jars, resolved from Maven Central on first use."""
    cache = cache_dir()
    libs = cache / "libs"
    done = cache / "resolved"
    if done.exists():
        return libs
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two runs at once resolve once
        if not done.exists():
            _resolve_into(cache, libs)
            done.write_text(KAFKA_VERSION + "\n")
    return libs


def _resolve_into(cache: Path, libs: Path) -> None:
    (cache / "pom.xml").write_text(_POM)
    staging = Path(tempfile.mkdtemp(prefix="libs-", dir=cache))
    command = [
        "mvn",
        "-B",
        "-q",
        "-Dmaven.wagon.http.retryHandler.count=3",  # Maven Central has its moments
        "-f",
        str(cache / "pom.xml"),
        f"{DEPENDENCY_PLUGIN}:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={staging}",
    ]
    finished = subprocess.run(command, capture_output=True, text=True, check=False)
    if finished.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise RuntimeError(
            f"resolving Apache Kafka {KAFKA_VERSION} from Maven Central failed "
            f"({' '.join(command)}):\n{finished.stdout[-3000:]}{finished.stderr[-3000:]}"
        )
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)


def java(
    libs: Path, main_class: str, *args: str, heap: str = "256m", options: tuple[str, ...] = ()
) -> list[str]:
    return ["java", f"-Xmx{heap}", *options, "-cp", f"{libs}/*", main_class, *args]


class ApacheKafka:
    """One broker (and controller) with its own log directory, stoppable and restartable."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.controller_port = free_port()
        while self.controller_port == self.port:
            self.controller_port = free_port()
        self.log_dirs = workdir / "data"
        self.log_file = workdir / "broker.log"
        self._libs = classpath()
        self._process: asyncio.subprocess.Process | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _properties(self) -> Path:
        listeners = (
            f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
        )
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "listeners": listeners,
            "advertised.listeners": listeners,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "log.dirs": str(self.log_dirs),
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # The default holds every new group's first join for 3 s.
            "group.initial.rebalance.delay.ms": "0",
            # As in docker/compose.yaml: topics exist because someone made them.
            "auto.create.topics.enable": "false",
        }
        path = self.workdir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        return path

    async def start(self, timeout_s: float = 120.0) -> None:
        """Format the log directory on the first start, then start and wait until it serves."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        properties = self._properties()
        if not self.log_dirs.exists():
            cluster_id = await self._cluster_id()
            await self._run_tool(
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "-t",
                cluster_id,
                "-c",
                str(properties),
            )
        log4j = self.workdir / "log4j2.properties"
        log4j.write_text(_LOG4J)
        self.log_file.write_text("")
        self._process = await asyncio.create_subprocess_exec(
            *dying_with_parent(
                java(
                    self._libs,
                    "kafka.Kafka",
                    str(properties),
                    heap="512m",
                    options=(
                        f"-Dlog4j2.configurationFile={log4j}",
                        f"-Dkafka.test.log={self.log_file}",
                    ),
                )
            ),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await self._wait_started(timeout_s)

    async def _cluster_id(self) -> str:
        return (await self._run_tool("kafka.tools.StorageTool", "random-uuid")).strip()

    async def _run_tool(self, main_class: str, *args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            *dying_with_parent(java(self._libs, main_class, *args)),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        text = output.decode(errors="replace")
        if process.returncode != 0:
            raise RuntimeError(f"{main_class} {' '.join(args)} failed: {text[-2000:]}")
        return text.splitlines()[-1] if text.strip() else ""

    async def _wait_started(self, timeout_s: float) -> None:
        """Polls the broker's log for its started line, and fails as soon as the JVM exits."""
        assert self._process is not None
        exited = asyncio.create_task(self._process.wait())
        try:
            async with asyncio.timeout(timeout_s):
                while STARTED_LINE not in self.log_file.read_text(errors="replace"):
                    if exited.done():
                        raise RuntimeError(
                            f"Apache Kafka exited with {exited.result()} while starting; "
                            f"its log:\n{self._log_tail()}"
                        )
                    await asyncio.sleep(0.05)
        finally:
            exited.cancel()

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-40:])
        return ""

    async def kill(self) -> None:
        """kill -9, as when the broker's machine dies: the log directory stays."""
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await self._process.wait()
        self._process = None

    async def stop(self, timeout_s: float = 30.0) -> None:
        if self._process is None:
            return
        if self._process.returncode is None:
            self._process.terminate()
            try:
                async with asyncio.timeout(timeout_s):
                    await self._process.wait()
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
        self._process = None


def _main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "run"
    if missing := missing_tools():
        print(MISSING_TOOLS.format(version=KAFKA_VERSION, missing=" and ".join(missing)))  # noqa: T201
        return 2
    if command == "check":
        return 0
    if command == "resolve":
        print(classpath())  # noqa: T201
        return 0

    async def run() -> None:
        with tempfile.TemporaryDirectory(prefix="kafka-") as workdir:
            broker = ApacheKafka(Path(workdir))
            await broker.start()
            print(f"Apache Kafka {KAFKA_VERSION} on {broker.bootstrap_servers}", flush=True)  # noqa: T201
            try:
                await asyncio.Event().wait()
            finally:
                await broker.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
