#!/usr/bin/env bash
# Installs the real servers Liftoff's service tests run against, on a bare Debian machine:
#   - prometheus, redis-server, postgresql (Debian packages; apt is skipped when the binaries exist)
#   - libssl-dev + pkg-config, which building the rdkafka crate needs (librdkafka is compiled from
#     source and links the system's OpenSSL; both are on the project's machine image already)
#   - Apache Kafka (KRaft) broker + CLI tool jars and a log4j2 backend from Maven Central into $KAFKA_DIR/libs
#   - a quiet log4j2 config ($KAFKA_DIR/log4j2.properties)
#   - an unprivileged `liftoff-test` user (PostgreSQL refuses to run as root)
# Idempotent; when everything is present it only checks (well under a second plus `java -version`).
source "$(dirname "$0")/lib.sh"

export DEBIAN_FRONTEND=noninteractive
TEST_USER=liftoff-test
LOG4J_CONFIG="$KAFKA_DIR/log4j2.properties"
KAFKA_STAMP="$KAFKA_DIR/libs.stamp"
KAFKA_WANT="kafka_2.13+kafka-tools=$KAFKA_VERSION log4j=$LOG4J_VERSION"

# Seconds since the epoch with milliseconds, for the step timings.
now() { date +%s.%3N; }
took() { note "took $(awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s"; }

is_root() { [[ "$(id -u)" == 0 ]]; }

# First postgres binary dir: PATH, then Debian's versioned layout.
pg_bin_dir() {
  local p
  if p="$(command -v initdb)" && [[ -x "$(dirname "$(readlink -f "$p")")/postgres" ]]; then
    dirname "$(readlink -f "$p")"
    return
  fi
  for p in /usr/lib/postgresql/*/bin; do
    [[ -x "$p/initdb" && -x "$p/postgres" ]] && { echo "$p"; return; }
  done
  return 1
}

install_debian_packages() {
  local missing=()
  command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  pg_bin_dir >/dev/null || missing+=(postgresql)
  command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
  pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev)
  if ((${#missing[@]} == 0)); then
    note "prometheus, redis-server, postgresql, libssl-dev: present (apt skipped)"
    return
  fi
  is_root || die "missing ${missing[*]}; re-run as root (apt-get install) or install them yourself"
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and apt-get is not available"
  step "Installing Debian packages: ${missing[*]}"
  # Packages must not start their daemons: the tests run their own instances on their own ports.
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && created_policy=1
  fi
  drop_policy() { if ((created_policy)); then rm -f "$policy"; fi; }
  local t
  t="$(now)"
  note "apt-get update"
  apt-get update -qq || { drop_policy; die "apt-get update failed"; }
  took "$t"
  t="$(now)"
  note "apt-get install --no-install-recommends ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    { drop_policy; die "apt-get install ${missing[*]} failed"; }
  drop_policy
  took "$t"
  command -v prometheus >/dev/null 2>&1 || die "prometheus still not on PATH after apt-get install"
  command -v redis-server >/dev/null 2>&1 || die "redis-server still not on PATH after apt-get install"
  pg_bin_dir >/dev/null || die "initdb/postgres not found under /usr/lib/postgresql/*/bin after apt-get install"
  pkg-config --exists openssl || die "OpenSSL headers (libssl-dev) still not found by pkg-config after apt-get install"
}

ensure_test_user() {
  if ! is_root; then
    note "not root: PostgreSQL will run as $(id -un)"
    return
  fi
  if id "$TEST_USER" >/dev/null 2>&1; then
    note "user $TEST_USER: present (runs PostgreSQL, which refuses to run as root)"
    return
  fi
  step "Creating system user $TEST_USER (PostgreSQL refuses to run as root)"
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$TEST_USER" ||
    die "useradd $TEST_USER failed"
}

check_java() {
  command -v java >/dev/null 2>&1 ||
    die "java is not installed (Kafka needs Java >= 17): apt-get install -y openjdk-17-jre-headless"
  local v
  v="$(java -version 2>&1)" || die "'java -version' failed:"$'\n'"$v"
  note "java: $(head -n1 <<<"$v")"
}

write_pom() {
  cat >"$1/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.liftoff</groupId>
  <artifactId>kafka-test-deps</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <!-- The CLI tools (org.apache.kafka.tools.TopicCommand): not a dependency of the broker. -->
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <!-- Kafka's POMs bring no logging backend; it logs through slf4j 1.7, hence the 1.x binding. -->
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>$MAVEN_DEPENDENCY_PLUGIN_VERSION</version>
      </plugin>
    </plugins>
  </build>
</project>
EOF
}

fetch_kafka() {
  if [[ -f "$KAFKA_STAMP" && "$(cat "$KAFKA_STAMP")" == "$KAFKA_WANT" ]] && compgen -G "$KAFKA_DIR/libs/kafka_2.13-*.jar" >/dev/null; then
    note "Kafka $KAFKA_VERSION jars: cached in $KAFKA_DIR/libs ($(find "$KAFKA_DIR/libs" -name '*.jar' | wc -l) jars)"
    return
  fi
  command -v mvn >/dev/null 2>&1 ||
    die "mvn (Apache Maven) is not installed; it fetches the Kafka jars: apt-get install -y maven"
  step "Fetching Kafka $KAFKA_VERSION + log4j $LOG4J_VERSION jars from Maven Central"
  local work t
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  write_pom "$work"
  mkdir -p "$KAFKA_DIR"
  rm -rf "$KAFKA_DIR/libs.partial"
  t="$(now)"
  if ! mvn -B -q -f "$work/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_DIR/libs.partial" >"$work/mvn.log" 2>&1; then
    tail -n 30 "$work/mvn.log" >&2
    die "mvn dependency:copy-dependencies failed (log above)"
  fi
  took "$t"
  # Swap in atomically, so an interrupted fetch never looks complete.
  rm -rf "$KAFKA_DIR/libs"
  mv "$KAFKA_DIR/libs.partial" "$KAFKA_DIR/libs"
  echo "$KAFKA_WANT" >"$KAFKA_STAMP"
  note "$(find "$KAFKA_DIR/libs" -name '*.jar' | wc -l) jars, $(du -sh "$KAFKA_DIR/libs" | cut -f1) in $KAFKA_DIR/libs"
}

write_log4j_config() {
  local want
  want="$(cat <<'EOF'
# Written by scripts/install-test-deps.sh: Kafka broker and CLI tools log warnings only.
status = error
appender.console.type = Console
appender.console.name = CONSOLE
# stderr, so that a CLI tool's stdout (e.g. TopicCommand --describe) holds only its output.
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.console.ref = CONSOLE
# The broker's "started" line tells a reader of the log that start-up finished.
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = info
EOF
)"
  if [[ -f "$LOG4J_CONFIG" && "$(cat "$LOG4J_CONFIG")" == "$want" ]]; then
    note "log4j2 config: $LOG4J_CONFIG"
    return
  fi
  printf '%s\n' "$want" >"$LOG4J_CONFIG"
  note "wrote log4j2 config $LOG4J_CONFIG"
}

started="$(now)"
step "Test dependencies (Prometheus, Redis, PostgreSQL, Kafka $KAFKA_VERSION)"
install_debian_packages
ensure_test_user
check_java
fetch_kafka
write_log4j_config
note "prometheus: $(prometheus --version 2>&1 | head -n1)"
note "redis-server: $(redis-server --version)"
note "postgres: $("$(pg_bin_dir)/postgres" --version)"
step "Test dependencies ready ($(awk -v a="$started" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s)"
echo "LIFTOFF_KAFKA_DIR=$KAFKA_DIR"
