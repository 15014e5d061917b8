// SPDX-License-Identifier: MIT
using System;
using System.Linq;
using System.Text;
using NUnit.Framework;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Tests;

/// <summary>Helpers shared by the PyTorch ports.</summary>
internal static class PyTorchPort
{
    internal const ScalarType F64 = ScalarType.Float64;

    /// <summary>torch.randn(shape, dtype=float64, requires_grad=True).</summary>
    internal static Tensor Randn(params long[] shape) => torch.randn(shape, dtype: F64, requires_grad: true);

    internal static Tensor Ones(params long[] shape) => torch.ones(shape, dtype: F64);

    /// <summary>ASSERT_VARIABLE_EQ / assertEqual: same shape and dtype, values equal up to float64 rounding.</summary>
    internal static void AssertEqual(Tensor? actual, Tensor expected, string what = "value")
    {
        Assert.That(actual, Is.Not.Null, what + " is undefined");
        Assert.That(actual!.shape, Is.EqualTo(expected.shape), what + ": shape");
        Assert.That(actual.dtype, Is.EqualTo(expected.dtype), what + ": dtype");
        using Tensor a = actual.detach(), e = expected.detach();
        bool close = a.allclose(e, 1e-9, 1e-12);
        Assert.That(close, Is.True, () => $"{what}: values differ, max |diff| = {(a - e).abs().max().ToDouble()}");
    }

    /// <summary>x.grad = None: breaks the tensor/graph reference cycle a backward with create_graph leaves.</summary>
    internal static void ClearGrads(params Tensor[] tensors)
    {
        foreach (Tensor t in tensors)
            t.grad = null;
    }

    /// <summary>torch.equal: same shape and bitwise-equal values.</summary>
    internal static bool Equal(Tensor a, Tensor b) =>
        a.shape.SequenceEqual(b.shape) && (a.detach() == b.detach()).all().item<bool>();

    /// <summary>Runs <paramref name="action"/>, which must throw, and returns every message of the exception chain.</summary>
    internal static string ErrorText(TestDelegate action)
    {
        Exception? e = Assert.Catch(action);
        Assert.That(e, Is.Not.Null, "expected an exception");
        var text = new StringBuilder();
        for (Exception? x = e; x is not null; x = x.InnerException)
            text.Append(x.GetType().FullName).Append(": ").Append(x.Message).Append('\n');
        return text.ToString();
    }

    /// <summary>
    /// libtorch's UndefinedGrad: an identity (a clone) whose backward returns an undefined gradient, used to
    /// send an undefined gradient into the function under test.
    /// </summary>
    /// <summary>
    /// The function of PyTorch's custom-function tests (MyFunction in both suites): var1 + pyscalar * var2 + var1 * var2,
    /// the int as a typed argument (it gets no gradient).
    /// </summary>
    internal static MultiFunction<int> MakeFunction(string name, AutogradFunctionOptions? options, Action? inBackward = null) =>
        AutogradFunction.CreateMultiWithArgs<int>(
            name,
            (ctx, t, pyscalar) =>
            {
                ctx.SaveForBackward(t[0], t[1]);
                return new[] { t[0]! + pyscalar * t[1]! + t[0]! * t[1]! };
            },
            (ctx, g, pyscalar) =>
            {
                inBackward?.Invoke();
                Tensor var1 = ctx.SavedTensors[0]!, var2 = ctx.SavedTensors[1]!;
                Tensor go = g[0]!;
                return new Tensor?[] { go + go * var2, go * pyscalar + go * var1 };
            },
            options);

    internal static readonly MultiFunction<int> MyFunctionWithMul = MakeFunction("MyFunction", null);

    internal static readonly UnaryFunction UndefinedGrad = AutogradFunction.Create(
        "UndefinedGrad", (ctx, x) => x.clone(), (ctx, g) => null);
}
