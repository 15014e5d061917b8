// SPDX-License-Identifier: MIT
using System;

namespace CustomAutograd.Native;

/// <summary>
/// The start-up self-check of Note [same tensor] (native/src/node.cpp): the shim recognises an output that
/// libtorch connected in place by the first word of the <c>at::Tensor</c> its handle points to (the TensorImpl
/// pointer). <see cref="NativeRuntime"/> runs it once, on tensors made through LibTorchSharp's exports (no
/// managed tensor, so no dispose scope sees them); until it has passed, the shim drops no output handle.
/// </summary>
internal static unsafe class TensorLayoutCheck
{
    /// <summary>LibTorchSharp's <c>THSTensor_newInt64Scalar(data, device_type, device_index, requires_grad)</c>.</summary>
    private static delegate* unmanaged<long, int, int, byte, IntPtr> s_newScalar;

    /// <summary>
    /// LibTorchSharp's <c>THSTensor_contiguous</c>: <c>new at::Tensor(t.contiguous())</c>, and <c>contiguous()</c>
    /// returns the tensor itself when it is contiguous, so this is a fresh handle to the same tensor. (In 0.107
    /// <c>THSTensor_set_requires_grad</c> and the in-place exports such as <c>THSTensor_detach_</c> return nothing.)
    /// </summary>
    private static delegate* unmanaged<IntPtr, IntPtr> s_contiguous;

    /// <summary>LibTorchSharp's <c>THSTorch_get_and_reset_last_err</c>.</summary>
    private static delegate* unmanaged<IntPtr> s_lastError;

    /// <summary>Takes the LibTorchSharp exports the check uses (resolved by <see cref="NativeRuntime"/>).</summary>
    internal static void Bind(IntPtr newInt64Scalar, IntPtr contiguous, IntPtr getAndResetLastError)
    {
        s_newScalar = (delegate* unmanaged<long, int, int, byte, IntPtr>)newInt64Scalar;
        s_contiguous = (delegate* unmanaged<IntPtr, IntPtr>)contiguous;
        s_lastError = (delegate* unmanaged<IntPtr>)getAndResetLastError;
    }

    /// <summary>Checks the layout on two new CPU tensors; throws <see cref="CustomAutogradException"/> when it differs.</summary>
    internal static void Run()
    {
        IntPtr a = IntPtr.Zero, same = IntPtr.Zero, other = IntPtr.Zero;
        try
        {
            a = Torch(s_newScalar(1, 0, -1, 0), "THSTensor_newInt64Scalar");
            other = Torch(s_newScalar(2, 0, -1, 0), "THSTensor_newInt64Scalar");
            same = NewHandleToSameTensor(a);
            Verify(a, same, other);
        }
        finally
        {
            foreach (IntPtr handle in new[] { same, other, a })
            {
                if (handle != IntPtr.Zero)
                    NativeRuntime.DisposeTensorHandle(handle);
            }
        }
    }

    /// <summary>A fresh handle (the caller disposes it) to the very tensor a contiguous <paramref name="handle"/> refers to.</summary>
    internal static IntPtr NewHandleToSameTensor(IntPtr handle) => Torch(s_contiguous(handle), "THSTensor_contiguous");

    /// <summary>
    /// Asks the shim whether <paramref name="a"/> and <paramref name="sameAsA"/> (two handles to one tensor) start
    /// with the same word and <paramref name="other"/> (another tensor) with a different one.
    /// </summary>
    internal static void Verify(IntPtr a, IntPtr sameAsA, IntPtr other)
    {
        int status = NativeMethods.ca_check_tensor_layout(a, sameAsA, other);
        if (status != NativeMethods.CA_OK)
            throw new CustomAutogradException(Describe(status, NativeMethods.LastError()));
    }

    /// <summary>The message of a failed check: what was expected and found (the shim's text) and how to fix it.</summary>
    internal static string Describe(int status, string nativeMessage) =>
        status == NativeMethods.CA_ERR_ABI
            ? "CustomAutograd's start-up check of libtorch's tensor layout failed: " + nativeMessage + ". " +
              "CustomAutograd was checked against TorchSharp " + TorchSharpVersion.Checked + " with libtorch " +
              TorchSharpVersion.CheckedLibTorch + ". Use that pair, or a CustomAutograd built for your TorchSharp; " +
              "docs/architecture.md lists what a TorchSharp upgrade requires."
            : "CustomAutograd could not check libtorch's tensor layout: " + nativeMessage;

    private static IntPtr Torch(IntPtr result, string export)
    {
        if (result != IntPtr.Zero)
            return result;
        IntPtr error = s_lastError();
        string message = error == IntPtr.Zero
            ? "no message"
            : System.Runtime.InteropServices.Marshal.PtrToStringUTF8(error) ?? "no message";
        if (error != IntPtr.Zero)
            System.Runtime.InteropServices.Marshal.FreeHGlobal(error);
        throw new CustomAutogradException($"CustomAutograd's start-up check: LibTorchSharp's {export} failed ({NativeMethods.TrimTrace(message)}).");
    }
}
