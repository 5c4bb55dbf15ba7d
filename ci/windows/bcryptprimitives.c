/* bcryptprimitives.dll for Wine 8, which lacks it: Rust's standard library (1.78+) gets
 * its randomness from ProcessPrng there. This forwards to advapi32's RtlGenRandom
 * (exported as SystemFunction036), which Wine has. Test aid only: ci/windows/smoke.sh
 * builds it with mingw and puts it next to the .exe under test.
 *
 *   x86_64-w64-mingw32-gcc -shared -O2 -o bcryptprimitives.dll bcryptprimitives.c -ladvapi32
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
