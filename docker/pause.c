/* The sandbox ("pause") process of every Pod on the test cluster (`cargo xtask images`), after
 * Kubernetes' build/pause/linux/pause.c: it holds the Pod's namespaces open, reaps the zombies
 * of a shared PID namespace, and exits on SIGINT or SIGTERM. Built with
 * `gcc -Os -Wall -Werror -static` into an image FROM scratch, USER 65535:65535. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void sigdown(int signo) {
  psignal(signo, "Shutting down, got signal");
  exit(0);
}

static void sigreap(int signo) {
  (void)signo;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && argv[1][0] == '-' && argv[1][1] == 'v') {
    printf("pause.c (hush)\n");
    return 0;
  }
  if (getpid() != 1) {
    /* Not an error: the kubelet may start it without a PID namespace of its own. */
    fprintf(stderr, "Warning: pause should be the first process\n");
  }
  struct sigaction down = {.sa_handler = sigdown};
  struct sigaction reap = {.sa_handler = sigreap, .sa_flags = SA_NOCLDSTOP};
  if (sigaction(SIGINT, &down, NULL) < 0) return 1;
  if (sigaction(SIGTERM, &down, NULL) < 0) return 2;
  if (sigaction(SIGCHLD, &reap, NULL) < 0) return 3;
  for (;;) pause();
  fprintf(stderr, "Error: infinite loop terminated\n");
  return 42;
}
