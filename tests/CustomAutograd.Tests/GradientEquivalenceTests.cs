// SPDX-License-Identifier: MIT
using System.Collections.Generic;
using NUnit.Framework;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Tests;

/// <summary>Gradients of custom functions equal those of libtorch's built-in operations.</summary>
[TestFixture]
public sealed class GradientEquivalenceTests
{
    private static IEnumerable<TestCaseData> Shapes()
    {
        foreach (ScalarType dtype in new[] { ScalarType.Float32, ScalarType.Float64 })
        {
            yield return new TestCaseData(new long[] { 7 }, dtype);
            yield return new TestCaseData(new long[] { 3, 4 }, dtype);
            yield return new TestCaseData(new long[] { 2, 3, 5 }, dtype);
        }
    }

    [TestCaseSource(nameof(Shapes))]
    public void Relu_AnyShape_GradientEqualsBuiltIn(long[] shape, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        Tensor x = TestUtil.Rand(shape, dtype);
        Tensor x2 = x.detach().clone().requires_grad_(true);
        Tensor g = torch.randn(shape, dtype: dtype);

        Tensor y = TestUtil.Relu.Apply(x);
        y.backward(new[] { g });
        Tensor expected = torch.nn.functional.relu(x2);
        expected.backward(new[] { g });

        TestUtil.AssertClose(y, expected);
        TestUtil.AssertClose(x.grad!, x2.grad!);
    }

    [TestCaseSource(nameof(Shapes))]
    public void Sigmoid_SavedOutput_GradientEqualsBuiltIn(long[] shape, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        Tensor x = TestUtil.Rand(shape, dtype);
        Tensor x2 = x.detach().clone().requires_grad_(true);

        Tensor y = TestUtil.Sigmoid.Apply(x);
        (y * y).sum().backward();
        Tensor expected = x2.sigmoid();
        (expected * expected).sum().backward();

        TestUtil.AssertClose(y, expected);
        TestUtil.AssertClose(x.grad!, x2.grad!);
    }

    [TestCase(2, 3, 4, ScalarType.Float32)]
    [TestCase(5, 1, 6, ScalarType.Float32)]
    [TestCase(2, 3, 4, ScalarType.Float64)]
    [TestCase(1, 7, 1, ScalarType.Float64)]
    public void MatMul_TwoInputs_GradientsEqualBuiltIn(int m, int k, int n, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        Tensor a = TestUtil.Rand(new long[] { m, k }, dtype);
        Tensor b = TestUtil.Rand(new long[] { k, n }, dtype);
        Tensor a2 = a.detach().clone().requires_grad_(true);
        Tensor b2 = b.detach().clone().requires_grad_(true);

        Tensor y = TestUtil.MatMul.Apply(a, b);
        y.pow(2).sum().backward();
        Tensor expected = a2.mm(b2);
        expected.pow(2).sum().backward();

        TestUtil.AssertClose(y, expected);
        TestUtil.AssertClose(a.grad!, a2.grad!);
        TestUtil.AssertClose(b.grad!, b2.grad!);
    }

    [TestCase(ScalarType.Float32, new long[] { 4 })]
    [TestCase(ScalarType.Float64, new long[] { 4 })]
    [TestCase(ScalarType.Float32, new long[] { 2, 3 })]
    [TestCase(ScalarType.Float64, new long[] { 2, 3 })]
    public void SumAndProduct_TwoOutputs_GradientsEqualBuiltIn(ScalarType dtype, long[] shape)
    {
        using var scope = NewDisposeScope();
        Tensor a = TestUtil.Rand(shape, dtype);
        Tensor b = TestUtil.Rand(shape, dtype);
        Tensor a2 = a.detach().clone().requires_grad_(true);
        Tensor b2 = b.detach().clone().requires_grad_(true);

        Tensor[] ys = TestUtil.SumAndProduct.Apply(a, b);
        (ys[0].sin() + ys[1].pow(2)).sum().backward();
        Tensor s = a2 + b2, p = a2 * b2;
        (s.sin() + p.pow(2)).sum().backward();

        TestUtil.AssertClose(ys[0], s);
        TestUtil.AssertClose(ys[1], p);
        TestUtil.AssertClose(a.grad!, a2.grad!);
        TestUtil.AssertClose(b.grad!, b2.grad!);
    }

    [Test]
    public void SumAndProduct_OnlyOneOutputUsed_MissingGradientMaterialisedAsZeros()
    {
        using var scope = NewDisposeScope();
        Tensor a = TestUtil.Rand(new long[] { 3 }, ScalarType.Float64);
        Tensor b = TestUtil.Rand(new long[] { 3 }, ScalarType.Float64);

        Tensor[] ys = TestUtil.SumAndProduct.Apply(a, b);
        ys[1].sum().backward();

        TestUtil.AssertClose(a.grad!, b.detach());
        TestUtil.AssertClose(b.grad!, a.detach());
    }

    [Test]
    public void Relu_Float64_MatchesCentralFiniteDifferences()
    {
        using var scope = NewDisposeScope();
        // Away from the kink at 0, where the derivative is defined.
        Tensor x = torch.tensor(new[] { -1.5, -0.3, 0.4, 2.0, 0.9 }, requires_grad: true);
        TestUtil.Relu.Apply(x).pow(2).sum().backward();
        Tensor numeric = FiniteDifferences(v => torch.nn.functional.relu(v).pow(2).sum().ToDouble(), x.detach());
        TestUtil.AssertClose(x.grad!, numeric, rtol: 1e-6, atol: 1e-6);
    }

    [Test]
    public void Sigmoid_Float64_MatchesCentralFiniteDifferences()
    {
        using var scope = NewDisposeScope();
        Tensor x = torch.linspace(-3, 3, 9, dtype: ScalarType.Float64).requires_grad_(true);
        TestUtil.Sigmoid.Apply(x).pow(3).sum().backward();
        Tensor numeric = FiniteDifferences(v => v.sigmoid().pow(3).sum().ToDouble(), x.detach());
        TestUtil.AssertClose(x.grad!, numeric, rtol: 1e-6, atol: 1e-7);
    }

    private static Tensor FiniteDifferences(System.Func<Tensor, double> f, Tensor x, double eps = 1e-6)
    {
        Tensor grad = torch.zeros_like(x);
        Tensor flat = x.clone().reshape(-1);
        for (long i = 0; i < flat.numel(); i++)
        {
            double v = flat[i].ToDouble();
            flat[i] = v + eps;
            double plus = f(flat.reshape(x.shape));
            flat[i] = v - eps;
            double minus = f(flat.reshape(x.shape));
            flat[i] = v;
            grad.reshape(-1)[i] = (plus - minus) / (2 * eps);
        }
        return grad;
    }
}
