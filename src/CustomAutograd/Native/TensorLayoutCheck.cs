// SPDX-License-Identifier: MIT
using System;

namespace CustomAutograd.Native;

// The start-up self-check of Note [same tensor] (native/src/node.cpp): the shim recognises an output that
// libtorch connected in place by the first word of the at::Tensor its handle points to (the TensorImpl
// pointer). NativeRuntime runs it once, on tensors made through LibTorchSharp's exports (no
// managed tensor, so no dispose scope sees them); until it has passed, the shim drops no output handle.
internal static unsafe class TensorLayoutCheck
{
    // LibTorchSharp's THSTensor_newInt64Scalar(data, device_type, device_index, requires_grad).
    private static delegate* unmanaged<long, int, int, byte, IntPtr> s_newScalar;

    // LibTorchSharp's THSTensor_contiguous: new at::Tensor(t.contiguous()), and contiguous()
    // returns the tensor itself when it is contiguous, so this is a fresh handle to the same tensor. (In 0.107
    // THSTensor_set_requires_grad and the in-place exports such as THSTensor_detach_ return nothing.)
    private static delegate* unmanaged<IntPtr, IntPtr> s_contiguous;

    // LibTorchSharp's THSTorch_get_and_reset_last_err.
    private static delegate* unmanaged<IntPtr> s_lastError;

    // Takes the LibTorchSharp exports the check uses (resolved by NativeRuntime).
    internal static void Bind(IntPtr newInt64Scalar, IntPtr contiguous, IntPtr getAndResetLastError)
    {
        s_newScalar = (delegate* unmanaged<long, int, int, byte, IntPtr>)newInt64Scalar;
        s_contiguous = (delegate* unmanaged<IntPtr, IntPtr>)contiguous;
        s_lastError = (delegate* unmanaged<IntPtr>)getAndResetLastError;
    }

    // Checks the layout on two new CPU tensors; throws CustomAutogradException when it differs.
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

    // A fresh handle (the caller disposes it) to the very tensor a contiguous handle refers to.
    internal static IntPtr NewHandleToSameTensor(IntPtr handle) => Torch(s_contiguous(handle), "THSTensor_contiguous");

    // Asks the shim whether a and sameAsA (two handles to one tensor) start
    // with the same word and other (another tensor) with a different one.
    internal static void Verify(IntPtr a, IntPtr sameAsA, IntPtr other)
    {
        int status = NativeMethods.ca_check_tensor_layout(a, sameAsA, other);
        if (status != NativeMethods.CA_OK)
            throw new CustomAutogradException(Describe(status, NativeMethods.LastError()));
    }

    // The message of a failed check: what was expected and found (the shim's text) and how to fix it.
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
