/*
 * A stand-in for Windows' bcryptprimitives.dll, for the wine smoke test only
 * (packaging/smoke.sh): Go 1.22+ Windows binaries need ProcessPrng from it
 * at start-up, and Debian bookworm's wine 8.0 does not have the DLL. It
 * fills the buffer from RtlGenRandom (advapi32 SystemFunction036). Never
 * shipped.
 */
#include <windows.h>
#include <ntsecapi.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
	while (len > 0) {
		ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
		if (!RtlGenRandom(data, n))
			return FALSE;
		data += n;
		len -= n;
	}
	return TRUE;
}
