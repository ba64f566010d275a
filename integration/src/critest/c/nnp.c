/* critest's nonewprivs image: a setuid-root binary printing its effective uid
 * (0 when the setuid bit took effect, the caller's uid under no_new_privs). */
#include <stdio.h>
#include <unistd.h>

int main(void) {
  printf("Effective uid: %d\n", (int)geteuid());
  return 0;
}
