// SPDX-License-Identifier: MIT
using System;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;
using TorchSharp;
using static CustomAutograd.Tests.GradCheckTestFunctions;
using static TorchSharp.torch;

namespace CustomAutograd.Tests;

/// <summary>Property-based: correct functions pass GradCheck for random shapes and values; a planted bug never does.</summary>
[TestFixture]
public sealed class GradCheckPropertyTests
{
    private const int Cases = 25;

    /// <summary>A random shape (rank 1 to 3, dimensions 1 to 3) and a seed for the values.</summary>
    public sealed record ShapeCase(long[] Shape, int Seed)
    {
        public override string ToString() => $"shape [{string.Join(", ", Shape)}], seed {Seed}";
    }

    /// <summary>Matrix-product dimensions m x k times k x n and a seed.</summary>
    public sealed record MatMulCase(int M, int K, int N, int Seed);

    private static readonly Arbitrary<ShapeCase> Shapes =
        Gen.Choose(1, 3)
           .SelectMany(rank => Gen.ArrayOf(Gen.Choose(1, 3), rank))
           .SelectMany(dims => Gen.Choose(0, int.MaxValue).Select(seed => new ShapeCase(Array.ConvertAll(dims, d => (long)d), seed)))
           .ToArbitrary();

    private static readonly Arbitrary<MatMulCase> MatMuls =
        Gen.Choose(1, 4).Three()
           .SelectMany(mkn => Gen.Choose(0, int.MaxValue).Select(seed => new MatMulCase(mkn.Item1, mkn.Item2, mkn.Item3, seed)))
           .ToArbitrary();

    private static readonly Config Quick = Config.QuickThrowOnFailure.WithMaxTest(Cases).WithQuietOnSuccess(true);

    /// <summary>Normal values in float64 from the case's seed.</summary>
    private static Tensor Values(long[] shape, int seed, bool requiresGrad = true)
    {
        using var generator = new Generator(unchecked((ulong)seed), torch.CPU);
        return torch.randn(shape, dtype: ScalarType.Float64, generator: generator).requires_grad_(requiresGrad);
    }

    private static void ForAll<T>(Arbitrary<T> cases, Action<T> property) =>
        Check.One(Quick, Prop.ForAll(cases, (T c) =>
        {
            using var scope = NewDisposeScope();
            property(c);
        }));

    [Test]
    public void Check_SigmoidRandomShapes_Passes() =>
        ForAll(Shapes, c => GradCheck.Check(TestUtil.Sigmoid, Values(c.Shape, c.Seed)));

    [Test]
    public void Check_TanhRandomShapes_Passes() =>
        ForAll(Shapes, c => GradCheck.Check(Tanh, Values(c.Shape, c.Seed)));

    [Test]
    public void Check_SoftmaxRandomShapes_Passes() =>
        ForAll(Shapes, c => GradCheck.Check(Softmax, Values(c.Shape, c.Seed)));

    [Test]
    public void Check_ReluAwayFromZeroRandomShapes_Passes() =>
        ForAll(Shapes, c =>
        {
            // |x| >= 0.1, far from ReLU's kink compared with eps.
            Tensor raw = Values(c.Shape, c.Seed, requiresGrad: false);
            Tensor x = (raw.sign() * (raw.abs() + 0.1)).requires_grad_(true);
            GradCheck.Check(TestUtil.Relu, x);
        });

    [Test]
    public void Check_MatMulRandomDimensions_Passes() =>
        ForAll(MatMuls, c => GradCheck.Check(TestUtil.MatMul, Values(new long[] { c.M, c.K }, c.Seed), Values(new long[] { c.K, c.N }, c.Seed + 1)));

    [Test]
    public void Check_SumAndProductRandomShapes_Passes() =>
        ForAll(Shapes, c => GradCheck.Check(TestUtil.SumAndProduct, new[] { Values(c.Shape, c.Seed), Values(c.Shape, c.Seed ^ 0x5555) }));

    [Test]
    public void Check_PlainFunctionRandomShapes_Passes() =>
        ForAll(Shapes, c => GradCheck.Check(
            xs => new[] { (xs[0]!.sin() * xs[1]!.exp()).sum(dim: 0), xs[0]!.pow(2).mean() },
            new[] { Values(c.Shape, c.Seed), Values(c.Shape, c.Seed ^ 0x0F0F) }));

    [Test]
    public void Check_TransposedViewRandomMatrices_Passes() =>
        ForAll(MatMuls, c => GradCheck.Check(TransposeView, Values(new long[] { c.M, c.N }, c.Seed)));

    [Test]
    public void Check_FastModeTanhRandomShapes_Passes() =>
        ForAll(Shapes, c => GradCheck.Check(Tanh, Values(c.Shape, c.Seed), new GradCheckOptions { FastMode = true, Seed = c.Seed }));

    [Test]
    public void GradGradCheck_CubeRandomShapes_Passes() =>
        ForAll(Shapes, c => GradGradCheck.Check(Cube, Values(c.Shape, c.Seed), options: new GradCheckOptions { Seed = c.Seed }));

    [Test]
    public void Check_SignErrorRandomShapes_AlwaysFailsOnDiagonal() =>
        ForAll(Shapes, c =>
        {
            GradCheckResult result = GradCheck.Check(SigmoidSignError, Values(c.Shape, c.Seed), NoRaise);
            Assert.That(result.FailureKind, Is.EqualTo(GradCheckFailureKind.JacobianMismatch));
            GradCheckMismatch mismatch = result.FirstMismatch!;
            Assert.That(mismatch.InputElementIndex, Is.EqualTo(mismatch.OutputElementIndex));
            Assert.That(mismatch.Analytical, Is.EqualTo(-mismatch.Numerical).Within(1e-6));
        });
}
