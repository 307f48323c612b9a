/* Synthetic emitter for benches/usdt_throughput.rs: fires a Bitcoin-Core-shaped
 * net:inbound_message tracepoint COUNT times in a tight loop.
 *
 * Shaped like Bitcoin Core's src/util/trace.h so tracers see the same thing they see in
 * bitcoind: provider "net", name "inbound_message", a `unsigned short` semaphore named
 * <provider>_<name>_semaphore in section ".probes", the probe guarded by `semaphore > 0`,
 * and the argument layout of net_processing.cpp (int64 peer id, addr, conn_type, msg type,
 * uint64 size, payload pointer).
 *
 * Usage: emitter COUNT [--wait-semaphore SECONDS] [--grace-ms MS] [--rate PER_SECOND]
 *   --wait-semaphore  first wait (1 ms sleeps) until a tracer has raised the semaphore, then
 *                     MS more milliseconds (default 100) so the tracer's programs and
 *                     filters are in place; exit 2 if the semaphore stays 0 for SECONDS.
 *   --rate            fire about PER_SECOND probes a second (a burst each millisecond, then
 *                     a sleep) instead of as fast as possible: a node's pace under a flood,
 *                     where the tracer wakes for smaller batches than at full speed.
 * Prints one line: fired=N seconds=S rate=R cpu=C: probes per second, and the CPU time
 * (user + system) the loop took. Tracing costs land in the traced process (uprobe trap, BPF
 * program, ring-buffer wakeups), so cpu/fired is the per-probe price bitcoind would pay, and
 * cpu < seconds means the loop was waiting for a CPU. */
#define _POSIX_C_SOURCE 200809L
#define SDT_USE_VARIADIC
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* As TRACEPOINT_SEMAPHORE(net, inbound_message) defines it; sys/sdt.h records its address
 * in the probe note and tracers increment it while attached. */
unsigned short net_inbound_message_semaphore __attribute__((section(".probes")));

/* Read through a volatile lvalue so every iteration checks it, as bitcoind effectively does
 * (there the check sits in a large function the compiler cannot unswitch); without this the
 * untraced loop could be hoisted away entirely and the "no tracer" rate would be fiction. */
static unsigned short semaphore(void)
{
	return *(volatile unsigned short *)&net_inbound_message_semaphore;
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* 1 when a tracer raised the semaphore within `timeout` seconds. */
static int wait_for_tracer(double timeout)
{
	double deadline = now_seconds() + timeout;
	while (semaphore() == 0) {
		if (now_seconds() > deadline)
			return 0;
		sleep_ms(1);
	}
	return 1;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: emitter COUNT [--wait-semaphore SECONDS] [--grace-ms MS] [--rate PER_SECOND]\n");
	exit(64);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	char *end;
	unsigned long long count = strtoull(argv[1], &end, 10);
	if (*end != '\0')
		usage();
	double wait = -1;
	long grace_ms = 100;
	double rate = 0;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--wait-semaphore") == 0 && i + 1 < argc)
			wait = strtod(argv[++i], NULL);
		else if (strcmp(argv[i], "--grace-ms") == 0 && i + 1 < argc)
			grace_ms = strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--rate") == 0 && i + 1 < argc)
			rate = strtod(argv[++i], NULL);
		else
			usage();
	}
	if (wait >= 0) {
		if (!wait_for_tracer(wait)) {
			fprintf(stderr, "emitter: semaphore still 0 after %.1f s: no tracer attached\n",
				wait);
			return 2;
		}
		sleep_ms(grace_ms);
	}

	/* What bitcoind passes for a `ping` from an inbound regtest peer. */
	static const char addr[] = "127.0.0.1:18444";
	static const char conn_type[] = "inbound";
	static const char msg_type[] = "ping";
	static const uint8_t payload[8] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
	uint64_t size = sizeof(payload);

	double start = now_seconds();
	double cpu_start = cpu_seconds();
	/* Paced: probe i is due at start + i / rate; whoever is ahead sleeps a millisecond. */
	unsigned long long burst = rate > 0 ? (unsigned long long)(rate / 1000) + 1 : 0;
	for (unsigned long long i = 0; i < count; i++) {
		if (burst > 0 && i % burst == 0) {
			while (now_seconds() - start < (double)i / rate)
				sleep_ms(1);
		}
		int64_t peer_id = (int64_t)(i & 127);
		if (semaphore() > 0)
			STAP_PROBEV(net, inbound_message, peer_id, addr, conn_type, msg_type, size,
				    payload);
	}
	double seconds = now_seconds() - start;
	double cpu = cpu_seconds() - cpu_start;
	printf("fired=%llu seconds=%.6f rate=%.0f cpu=%.6f\n", count, seconds,
	       seconds > 0 ? (double)count / seconds : 0.0, cpu);
	return 0;
}
