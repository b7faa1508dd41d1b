/* A stand-in for Windows' bcryptprimitives.dll, which Wine 8 (Debian 12) lacks and Rust's
 * standard library imports for ProcessPrng, its source of random bytes. Only for running the
 * Windows build under Wine in CI; real Windows (10 and later) has the DLL. ProcessPrng is
 * forwarded to bcrypt's system RNG, which Wine implements. */
#include <windows.h>
#include <bcrypt.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!BCRYPT_SUCCESS(BCryptGenRandom(NULL, data, chunk, BCRYPT_USE_SYSTEM_PREFERRED_RNG))) {
            return FALSE;
        }
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
