/* keeld: the Keel mail server.  See keeld(8). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keeld/config.h"
#include "keeld/master.h"
#include "keeld/worker.h"
#include "lib/log.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: keeld [-c FILE] [-f] [-t]\n"
		   "\n"
		   "  -c, --config FILE  keel.conf to use (default %s)\n"
		   "  -f, --foreground   stay in the foreground and log to stderr\n"
		   "  -t, --test         check the configuration and exit\n"
		   "  -h, --help         this text\n"
		   "  -V, --version      print the version\n"
		   "\n"
		   "Signals: SIGHUP re-reads keel.conf live (as `keelctl reload` does);\n"
		   "SIGTERM stops accepting, finishes pending writes and exits.\n",
		CONFIG_DEFAULT_PATH);
}

/* Detaches from the terminal.  The parent waits on a pipe until the daemon
 * has bound its listeners, so that `keeld -c FILE` reports a start-up error
 * and exits 1 instead of failing silently in the background. */
static int daemonise(int *ready_fd_r)
{
	int pipefd[2], devnull;
	pid_t pid;
	char msg[1024];
	ssize_t n;

	if (pipe2(pipefd, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
		perror("keeld: daemonise");
		return -1;
	}
	if (pid > 0) {
		close(pipefd[1]);
		n = read(pipefd[0], msg, sizeof(msg) - 1);
		if (n > 0) {
			msg[n] = '\0';
			fprintf(stderr, "keeld: %s\n", msg);
			_exit(1);
		}
		_exit(0);
	}
	close(pipefd[0]);
	setsid();
	if ((pid = fork()) < 0)
		_exit(1);
	if (pid > 0)
		_exit(0);
	umask(027);
	if (chdir("/") < 0)
		_exit(1);
	devnull = open("/dev/null", O_RDWR);
	if (devnull >= 0) {
		dup2(devnull, 0);
		dup2(devnull, 1);
		dup2(devnull, 2);
		if (devnull > 2)
			close(devnull);
	}
	*ready_fd_r = pipefd[1];
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "test", no_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "worker", no_argument, NULL, 'W' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = CONFIG_DEFAULT_PATH, *err;
	bool foreground = false, test = false;
	struct config config;
	char *text = NULL, *error = NULL, self[PATH_MAX];
	int c, ready_fd = -1, status;

	while ((c = getopt_long(argc, argv, "c:fthV", opts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'f': foreground = true; break;
		case 't': test = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("keeld %s\n", KEEL_VERSION); return 0;
		case 'W': return worker_main();
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (config_load(path, &config, &text, &error) < 0) {
		fprintf(stderr, "keeld: %s\n", error);
		free(error);
		return 1;
	}
	if (test) {
		printf("keeld: %s: configuration OK (%zu listeners)\n", config.path,
		       config.n_listeners);
		config_deinit(&config);
		free(text);
		return 0;
	}
	if (realpath("/proc/self/exe", self) == NULL) {
		fprintf(stderr, "keeld: cannot find my own binary: %s\n", strerror(errno));
		return 1;
	}
	if (foreground)
		snprintf(config.log, sizeof(config.log), "stderr");
	else if (daemonise(&ready_fd) < 0)
		return 1;
	if (log_open(config.log, "keeld", &err) < 0) {
		fprintf(stderr, "keeld: log %s: %s\n", config.log, err);
		return 1;
	}
	log_set_level(config.log_level);
	status = master_run(&config, text, self, foreground, ready_fd);
	config_deinit(&config);
	log_close();
	return status;
}
