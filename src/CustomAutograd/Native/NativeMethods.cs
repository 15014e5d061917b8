// SPDX-License-Identifier: MIT
using System;
using System.Runtime.InteropServices;

namespace CustomAutograd.Native;

// The shim's C ABI (native/include/custom_autograd/ca_api.h); names are identical.
internal static unsafe partial class NativeMethods
{
    internal const string Library = "CustomAutogradNative";

    // Must equal CA_ABI_VERSION of the shim that is loaded.
    internal const int AbiVersion = 8;

    internal const int CA_OK = 0;
    internal const int CA_ERR_INVALID_ARGUMENT = 1;
    internal const int CA_ERR_NOT_INITIALIZED = 2;
    internal const int CA_ERR_TORCH = 3;
    internal const int CA_ERR_CALLBACK = 4;
    internal const int CA_ERR_SHUTDOWN = 5;
    internal const int CA_ERR_INTERNAL = 6;
    internal const int CA_ERR_ABI = 7;

    [LibraryImport(Library)]
    internal static partial int ca_abi_version();

    [LibraryImport(Library)]
    internal static partial int ca_init(CaTorchApi* api, IntPtr backward, IntPtr release);

    [LibraryImport(Library)]
    internal static partial int ca_check_tensor_layout(IntPtr a, IntPtr sameAsA, IntPtr other);

    [LibraryImport(Library)]
    internal static partial void ca_shutdown();

    [LibraryImport(Library)]
    internal static partial IntPtr ca_last_error();

    [LibraryImport(Library)]
    internal static partial void ca_set_callback_error(byte* message);

    [LibraryImport(Library)]
    internal static partial int ca_apply(
        IntPtr name, IntPtr state,
        IntPtr* inputs, int nInputs, int isExecutable,
        IntPtr* outputs, int nOutputs,
        IntPtr* nonDiff, int nNonDiff,
        IntPtr* dirty, int nDirty,
        IntPtr* toSave, int nSave,
        IntPtr* wrapped, int* nodeCreated);

    [LibraryImport(Library)]
    internal static partial IntPtr ca_intern(byte* text);

    [LibraryImport(Library)]
    internal static partial int ca_grad(
        IntPtr* outputs, int nOutputs, IntPtr* inputs, int nInputs, IntPtr* gradOutputs, int nGradOutputs,
        int retainGraph, int createGraph, int allowUnused, IntPtr* results);

    [LibraryImport(Library)]
    internal static partial int ca_backward(
        IntPtr* tensors, int nTensors, IntPtr* gradTensors, int nGradTensors, int retainGraph, int createGraph,
        IntPtr* inputs, int nInputs);

    [LibraryImport(Library)]
    internal static partial void ca_flush_thread();

    [LibraryImport(Library)]
    [SuppressGCTransition]
    internal static partial void ca_get_stats(CaStats* stats);

    // The message of the last failure on this thread.
    internal static string LastError() => TrimTrace(Marshal.PtrToStringUTF8(ca_last_error()) ?? "unknown native error");

    // A NUL-terminated UTF-8 copy of text, for the C ABI.
    internal static byte[] ToUtf8Z(string text)
    {
        byte[] buffer = new byte[System.Text.Encoding.UTF8.GetByteCount(text) + 1];
        System.Text.Encoding.UTF8.GetBytes(text, 0, text.Length, buffer, 0);
        return buffer;
    }

    // Drops the C++ stack trace libtorch appends to its messages ("Exception raised from ...").
    internal static string TrimTrace(string message)
    {
        int at = message.IndexOf("\nException raised from ", StringComparison.Ordinal);
        return at < 0 ? message : message.Substring(0, at);
    }
}
