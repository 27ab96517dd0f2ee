/* The master process: reads keel.conf, binds the listeners, reads the TLS
 * files, starts the worker (fork + exec of this binary with --worker, the
 * IPC socket on fd 3), hands it everything through ipc.h, restarts it at
 * once if it dies, and applies reloads (SIGHUP or `keelctl reload`). */
#ifndef KEEL_KEELD_MASTER_H
#define KEEL_KEELD_MASTER_H

#include <stdbool.h>

#include "keeld/config.h"

/* Exit status of a worker that must not be restarted (bad data dir, newer
 * schema, ...): the master stops too. */
#define WORKER_EXIT_FATAL 78

/* Runs the master until stopped.  config_text is the text config was parsed
 * from.  Returns the process exit status. */
int master_run(struct config *config, char *config_text, const char *self_path,
	       bool foreground, int ready_fd);

#endif
