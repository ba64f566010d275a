/* `ipcs -m` for critest's busybox image (Debian's busybox-static has no
 * ipcs): lists the IPC namespace's shared memory segments through
 * shmctl(SHM_INFO) and shmctl(SHM_STAT), as busybox's ipcs does. */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/shm.h>

int main(void) {
  struct shm_info info;
  int max = shmctl(0, SHM_INFO, (struct shmid_ds *)&info);
  if (max < 0) {
    perror("ipcs: shmctl(SHM_INFO)");
    return 1;
  }
  printf("\n------ Shared Memory Segments --------\n");
  printf("key        shmid      owner      perms      bytes      nattch     status\n");
  for (int i = 0; i <= max; i++) {
    struct shmid_ds ds;
    int id = shmctl(i, SHM_STAT, &ds);
    if (id < 0)
      continue;
    printf("0x%08x %-10d %-10u %-10o %-10lu %-10lu\n", (unsigned)ds.shm_perm.__key, id,
           (unsigned)ds.shm_perm.uid, (unsigned)(ds.shm_perm.mode & 0777),
           (unsigned long)ds.shm_segsz, (unsigned long)ds.shm_nattch);
  }
  return 0;
}
