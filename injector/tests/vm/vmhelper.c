/* Two tiny helpers for the VM checks, built static by the xtask:
 *   show-euid           print the effective uid (installed setuid root)
 *   as-nobody CMD ...   drop to uid/gid 65534 and exec CMD
 * busybox has neither a setuid-honouring `id` nor `setpriv --reuid`. */
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	if (strcmp(name, "show-euid") == 0) {
		printf("%d\n", (int)geteuid());
		return 0;
	}
	if (strcmp(name, "as-nobody") == 0 && argc > 1) {
		if (setgroups(0, NULL) || setgid(65534) || setuid(65534)) {
			perror("as-nobody");
			return 1;
		}
		execv(argv[1], argv + 1);
		perror("as-nobody: exec");
		return 127;
	}
	fprintf(stderr, "usage: show-euid | as-nobody CMD [ARGS]\n");
	return 2;
}
