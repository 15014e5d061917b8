// SPDX-License-Identifier: MIT
using System;
using CustomAutograd.Native;
using NUnit.Framework;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Tests;

/// <summary>
/// The start-up self-check of the at::Tensor layout (Note [same tensor], docs/architecture.md A5); its failure paths
/// are driven through the internal seam <see cref="TensorLayoutCheck.Verify"/>.
/// </summary>
[TestFixture]
public sealed class GuardTests
{
    [Test]
    public void TensorLayoutCheck_RealTensors_Passes()
    {
        NativeRuntime.EnsureInitialized();
        Assert.DoesNotThrow(TensorLayoutCheck.Run);
    }

    [Test]
    public void TensorLayoutCheck_PassedAtStartUp_OutputConnectedInPlaceKeepsItsTensorObject()
    {
        // The shim drops the fresh handle of an output connected in place only once the check has passed; the
        // caller then gets the very Tensor object its Forward returned.
        Tensor? produced = null;
        UnaryFunction f = AutogradFunction.Create("KeepsObject", (ctx, x) => produced = x * 2, (ctx, g) => g * 2);
        using var scope = NewDisposeScope();
        Tensor x = torch.ones(2, requires_grad: true);
        Tensor y = f.Apply(x);
        Assert.That(ReferenceEquals(y, produced), Is.True);
        y.sum().backward();
        Assert.That(x.grad!.data<float>().ToArray(), Is.EqualTo(new[] { 2f, 2f }));
    }

    [Test]
    public void TensorLayoutCheck_TwoTensorsGivenAsOne_ThrowsWithWhatWasFoundAndTheFix()
    {
        NativeRuntime.EnsureInitialized();
        using var scope = NewDisposeScope();
        Tensor a = torch.zeros(1), b = torch.zeros(1), c = torch.zeros(1);

        var e = Assert.Throws<CustomAutogradException>(() => TensorLayoutCheck.Verify(a.Handle, b.Handle, c.Handle));

        Assert.That(e!.Message, Does.StartWith("CustomAutograd's start-up check of libtorch's tensor layout failed: "));
        Assert.That(e.Message, Does.Contain("two handles to one tensor start with different words (0x"));
        Assert.That(e.Message, Does.Contain("one pointer to its TensorImpl"));
        Assert.That(e.Message, Does.Contain("TorchSharp 0.107 with libtorch 2.10"));
        Assert.That(e.Message, Does.Contain("docs/architecture.md lists what a TorchSharp upgrade requires"));
    }

    [Test]
    public void TensorLayoutCheck_OneTensorGivenAsTheOther_Throws()
    {
        NativeRuntime.EnsureInitialized();
        using var scope = NewDisposeScope();
        Tensor a = torch.zeros(1);
        IntPtr same = TensorLayoutCheck.NewHandleToSameTensor(a.Handle);
        IntPtr sameAgain = TensorLayoutCheck.NewHandleToSameTensor(a.Handle);
        try
        {
            var e = Assert.Throws<CustomAutogradException>(() => TensorLayoutCheck.Verify(a.Handle, same, sameAgain));
            Assert.That(e!.Message, Does.Contain("two different tensors start with the same word"));
            Assert.DoesNotThrow(() => TensorLayoutCheck.Verify(a.Handle, same, torch.zeros(1).Handle));
        }
        finally
        {
            NativeRuntime.DisposeTensorHandle(same);
            NativeRuntime.DisposeTensorHandle(sameAgain);
        }
    }

    [Test]
    public void TensorLayoutCheck_FailedAfterStartUp_LeavesTheVerdict()
    {
        NativeRuntime.EnsureInitialized();
        using var scope = NewDisposeScope();
        Tensor a = torch.zeros(1), b = torch.zeros(1), c = torch.zeros(1);
        Assert.Throws<CustomAutogradException>(() => TensorLayoutCheck.Verify(a.Handle, b.Handle, c.Handle));
        TensorLayoutCheck_PassedAtStartUp_OutputConnectedInPlaceKeepsItsTensorObject();
    }

    [Test]
    public void TensorLayoutCheck_RepeatedHandle_ReportsThatItCouldNotCheck()
    {
        NativeRuntime.EnsureInitialized();
        using var scope = NewDisposeScope();
        Tensor a = torch.zeros(1), b = torch.zeros(1);
        var e = Assert.Throws<CustomAutogradException>(() => TensorLayoutCheck.Verify(a.Handle, a.Handle, b.Handle));
        Assert.That(e!.Message, Does.StartWith("CustomAutograd could not check libtorch's tensor layout: "));
        Assert.That(e.Message, Does.Contain("must be distinct"));
    }
}
